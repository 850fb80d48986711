/* Open-problems catalog: filters, search, live count and deep links.
 * Progressive enhancement: without this script the full list is shown and the controls stay
 * hidden. No dependencies, no network. Filter state is mirrored in the URL query
 * (?category=…&difficulty=…&chapter=…&q=…) so that a filtered view can be shared; a hash such
 * as #problem-1-10 always shows, scrolls to and highlights that problem. */
(function () {
  "use strict";

  var FILTERS = ["q", "category", "difficulty", "chapter"];

  function pageMatches(page, target) {
    if (page === target) return true;
    if (target.slice(-6) === "/index") {
      return page.indexOf(target.slice(0, -5)) === 0;
    }
    return false;
  }

  function init(root) {
    var form = root.querySelector(".op-controls");
    var count = root.querySelector(".op-count");
    var empty = root.querySelector(".op-empty");
    var items = Array.prototype.slice.call(root.querySelectorAll(".op-item"));
    var total = items.length;
    var controls = {};
    FILTERS.forEach(function (name) {
      controls[name] = root.querySelector('[data-op-filter="' + name + '"]');
    });
    var pinned = null; // the problem named in the URL hash, shown whatever the filters say

    function state() {
      var s = {};
      FILTERS.forEach(function (name) {
        var el = controls[name];
        s[name] = el ? el.value.trim() : "";
      });
      return s;
    }

    function matches(item, s) {
      if (s.category && item.getAttribute("data-category") !== s.category) return false;
      if (s.difficulty) {
        var levels = (item.getAttribute("data-levels") || "").split(" ");
        if (levels.indexOf(s.difficulty) === -1) return false;
      }
      if (s.chapter) {
        var pages = (item.getAttribute("data-chapters") || "").split(" ").filter(Boolean);
        if (!pages.some(function (p) { return pageMatches(p, s.chapter); })) return false;
      }
      if (s.q) {
        var hay = item.getAttribute("data-search") || "";
        var words = s.q.toLowerCase().split(/\s+/).filter(Boolean);
        for (var i = 0; i < words.length; i++) {
          if (hay.indexOf(words[i]) === -1) return false;
        }
      }
      return true;
    }

    function apply() {
      var s = state();
      var shown = 0;
      var pinnedOutside = false;
      items.forEach(function (item) {
        var ok = matches(item, s);
        if (ok) shown++;
        var visible = ok || item === pinned;
        if (item === pinned && !ok) pinnedOutside = true;
        item.hidden = !visible;
        item.classList.toggle("op-pinned-outside", item === pinned && !ok);
      });
      var filtered = FILTERS.some(function (n) { return s[n]; });
      var text;
      if (!filtered) {
        text = total + " problems";
      } else {
        text = shown + (shown === 1 ? " problem matches" : " problems match") +
          " (of " + total + ")";
      }
      if (pinnedOutside) {
        text += "; the linked problem " + pinned.getAttribute("data-number") +
          " is shown as well";
      }
      count.textContent = text;
      count.setAttribute("data-shown", String(shown));
      if (empty) empty.hidden = shown !== 0 || pinnedOutside;
      return s;
    }

    function writeUrl(s) {
      if (!window.history || !window.history.replaceState) return;
      var params = new URLSearchParams(window.location.search);
      FILTERS.forEach(function (name) {
        if (s[name]) params.set(name, s[name]); else params.delete(name);
      });
      var query = params.toString();
      var url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
      window.history.replaceState(window.history.state, "", url);
    }

    function readUrl() {
      var params = new URLSearchParams(window.location.search);
      FILTERS.forEach(function (name) {
        var el = controls[name];
        var value = params.get(name);
        if (!el || value === null) return;
        if (el.tagName === "SELECT") {
          var known = Array.prototype.some.call(el.options, function (o) { return o.value === value; });
          if (!known) return;
        }
        el.value = value;
      });
    }

    function pinFromHash(scroll) {
      var id = decodeURIComponent((window.location.hash || "").slice(1));
      var target = id ? document.getElementById(id) : null;
      if (pinned) pinned.classList.remove("op-target");
      pinned = target && items.indexOf(target) !== -1 ? target : null;
      apply();
      if (pinned) {
        pinned.classList.add("op-target");
        if (scroll) {
          pinned.scrollIntoView({ block: "start" });
          pinned.focus({ preventScroll: true });
        }
      }
    }

    form.hidden = false;
    readUrl();
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.addEventListener("input", function () { writeUrl(apply()); });
    form.addEventListener("change", function () { writeUrl(apply()); });
    form.addEventListener("reset", function () {
      // the reset event fires before the fields are cleared
      window.setTimeout(function () { writeUrl(apply()); }, 0);
    });
    window.addEventListener("hashchange", function () { pinFromHash(true); });
    pinFromHash(true);
  }

  function start() {
    var roots = document.querySelectorAll("[data-op-catalog]");
    Array.prototype.forEach.call(roots, init);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

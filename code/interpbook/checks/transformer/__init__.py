"""Checks for the chapter "A transformer from scratch" (book/chapters/transformer/)."""

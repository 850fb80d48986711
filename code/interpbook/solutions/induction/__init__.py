"""Solutions of the chapter `induction` (generated; see `interpbook.solutions`)."""

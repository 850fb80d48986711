"""Solutions of the chapter `grokking` (generated; see `interpbook.solutions`)."""

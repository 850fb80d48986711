"""Solutions of the chapter `brackets` (generated; see `interpbook.solutions`)."""

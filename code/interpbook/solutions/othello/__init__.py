"""Solutions of the chapter `othello` (generated; see `interpbook.solutions`)."""

"""Solutions of the chapter `superposition` (generated; see `interpbook.solutions`)."""

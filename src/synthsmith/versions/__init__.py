"""Dataset versions: what changed between two revisions, experiments or export directories."""

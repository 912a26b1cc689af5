"""The method, one module per DVC stage (named like it), pure `DataFrame -> DataFrame` functions,
plus their helpers (names, sources, feature_tree, hygiene, diversity, weights, compare, votes,
verify_paper, verify_strict, solvability, tool_inputs)."""

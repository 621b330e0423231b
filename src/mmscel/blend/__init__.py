"""Level-2: blend level-1 runs with weights on the simplex, scored exactly and honestly."""

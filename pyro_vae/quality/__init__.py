"""Sample quality: how much a model's samples look like the data, scored in the feature space of a
classifier the project trains itself (issue 28)."""

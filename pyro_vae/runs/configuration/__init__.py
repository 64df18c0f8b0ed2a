"""The configuration: the schema of every setting, its ranges and cross-setting rules, the one-line
refusals, and the builders that turn settings into the data, the model and the objective. Nothing here
imports torch at module level where ``run.py --help`` or a refusal needs it not to."""

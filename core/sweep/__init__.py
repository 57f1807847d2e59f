"""``litplug sweep``: grids of ordinary litplug runs over seeds and settings, in ordered stages, run on
an existing engine (a local process pool, or submitit for SLURM), tracked as one MLflow parent run with
a child run per cell, and summarised with means, standard deviations and paired 95 % t-intervals."""

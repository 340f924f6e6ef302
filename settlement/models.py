# Baselines, settlement runs and statements arrive with the settlement issue.

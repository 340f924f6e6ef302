# Dispatch events, allocations and device commands arrive with the dispatch issue.

"""nova-kronos: load-aware placement and rebalancing for OpenStack Nova.

Deliberately import-free: nova-scheduler and Nova's functional harness
choose the concurrency mode (eventlet or threading) before anything else
is imported.
"""

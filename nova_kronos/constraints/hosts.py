"""Host liveness and availability-zone constraints."""


def usable(state, servers, hosts):
    """Destination's nova-compute service is up, enabled, not forced down."""
    return state.usable[hosts][None, :].repeat(len(servers), axis=0)


def same_availability_zone(state, servers, hosts):
    """Destination is in the source host's availability zone.

    Nova refuses a live migration across availability zones for a server
    booted into one; we keep every move inside its zone regardless.
    """
    src_az = state.az[state.src[servers]]
    return src_az[:, None] == state.az[hosts][None, :]

# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.


"""Indexed arrays a planner works on, built once per run from the fleet.

Hosts and servers get integer indexes; every per-host, per-server and
per-group quantity is a numpy array, so constraints and scoring are
vectorised and a planned move updates the state in O(P + 1).
"""

import numpy as np

from nova_kronos.constraints import server_groups


class PlanningState:
    """The mutable planning view of a :class:`nova_kronos.fleet.Fleet`.

    :param fleet: the fleet (hosts, servers, groups).
    :param policies: the enabled :class:`nova_kronos.policy.Policy` list.
    :param loads: dict policy name -> dict host -> load; hosts lacking a
        load for any policy must already be left out of ``fleet_hosts``.
    :param shares: dict policy name -> dict server id -> share.
    :param fleet_hosts: host names to index (those with complete data).
    :param candidates: server ids that may be moved (on indexed hosts).
    :param quarantine: optional iterable of ``(server_id, host)`` pairs
        not to plan (``host`` None: no destination at all), e.g. the keys
        of :attr:`nova_kronos.history.Memory.quarantine`; pairs outside the
        candidates or the indexed hosts are ignored.
    :param in_flight: optional iterable of ``(server_id, source,
        destination)`` live migrations under way: the server counts as a
        member of its group on both hosts, as Placement holds allocations
        on both until the migration ends.

    Arrays (``P`` policies, ``H`` hosts, ``V`` candidate servers, ``G``
    groups): ``loads`` [P, H], ``shares`` [P, V], ``capacity`` [P, H],
    ``thresholds`` [P], ``weights`` [P], ``src`` [V], ``vcpus`` and
    ``memory_mb`` [V], ``free_vcpus``, ``free_memory_mb``, ``usable``, ``az``
    [H], ``group`` [V] (-1 for none), ``group_policy``, ``group_max`` [G],
    ``group_counts`` [G, H] (members of each group on each host, counting
    all servers of the fleet, not only candidates, and in-flight servers on
    both hosts), ``quarantine_all`` [V] (no destination allowed) and
    ``quarantine_v`` / ``quarantine_h`` [Q] (candidate and host index of
    each quarantined pair).
    """

    def __init__(self, fleet, policies, loads, shares, fleet_hosts,
                 candidates, quarantine=(), in_flight=()):
        self.policies = list(policies)
        self.host_names = list(fleet_hosts)
        self.host_index = {h: i for i, h in enumerate(self.host_names)}
        hosts = [fleet.hosts[h] for h in self.host_names]
        self.servers = [fleet.servers[s] for s in candidates]
        n_p = len(self.policies)

        self.weights = np.array([p.weight for p in self.policies])
        self.thresholds = np.array([p.threshold for p in self.policies])
        self.loads = np.array([[loads[p.name][h] for h in self.host_names]
                               for p in self.policies]).reshape(
                                   n_p, len(hosts))
        self.shares = np.array([[shares[p.name][s.id] for s in self.servers]
                                for p in self.policies]).reshape(
                                    n_p, len(self.servers))
        self.capacity = np.array([
            [host_capacity(h, p.resource) for h in hosts]
            for p in self.policies]).reshape(n_p, len(hosts))
        self.src = np.array([self.host_index[s.host] for s in self.servers],
                            dtype=int)
        self.vcpus = np.array([s.vcpus for s in self.servers], dtype=float)
        self.memory_mb = np.array([s.memory_mb for s in self.servers],
                                  dtype=float)
        self.free_vcpus = np.array([h.free_vcpus for h in hosts], dtype=float)
        self.free_memory_mb = np.array([h.free_memory_mb for h in hosts],
                                       dtype=float)
        self.usable = np.array([h.usable for h in hosts], dtype=bool)
        zones = {}
        self.az = np.array([zones.setdefault(h.availability_zone, len(zones))
                            for h in hosts], dtype=int)

        group_ids = list(fleet.groups)
        gindex = {g: i for i, g in enumerate(group_ids)}
        groups = [fleet.groups[g] for g in group_ids]
        self.group = np.array([gindex.get(s.group_id, -1)
                               for s in self.servers], dtype=int)
        self.group_policy = np.array(
            [server_groups.POLICY_CODES[g.policy] for g in groups], dtype=int)
        self.group_max = np.array([g.max_server_per_host or 1 for g in groups],
                                  dtype=int)
        self.group_counts = np.zeros((len(groups), len(hosts)), dtype=int)
        for gi, g in enumerate(groups):
            for member in g.members:
                server = fleet.servers.get(member)
                if server is not None and server.host in self.host_index:
                    self.group_counts[gi, self.host_index[server.host]] += 1
        if in_flight:
            self._count_in_flight(fleet, gindex, in_flight)
        self.moved = np.zeros(len(self.servers), dtype=bool)
        self._index_quarantine(quarantine)

    def _count_in_flight(self, fleet, gindex, in_flight):
        member_of = {m: gindex[g.id] for g in fleet.groups.values()
                     for m in g.members}
        for sid, source, destination in in_flight:
            gi = member_of.get(sid)
            if gi is None:
                continue
            server = fleet.servers.get(sid)
            counted = server.host if server is not None else None
            for host in (source, destination):
                # Nova may already show the server on either end.
                h = self.host_index.get(host)
                if h is not None and host != counted:
                    self.group_counts[gi, h] += 1

    def _index_quarantine(self, quarantine):
        self.quarantine_all = np.zeros(len(self.servers), dtype=bool)
        pairs = []
        if quarantine:
            vindex = {s.id: v for v, s in enumerate(self.servers)}
            for sid, host in quarantine:
                v = vindex.get(sid)
                if v is None:
                    continue
                if host is None:
                    self.quarantine_all[v] = True
                elif host in self.host_index:
                    pairs.append((v, self.host_index[host]))
        pairs = np.array(pairs, dtype=int).reshape(len(pairs), 2)
        self.quarantine_v, self.quarantine_h = pairs[:, 0], pairs[:, 1]

    def _k(self, p, servers, hosts):
        cap = self.capacity[p]
        return scale_factor(cap[self.src[servers]][:, None],
                            cap[hosts][None, :])

    def added_load(self, p, servers, hosts):
        """Load policy ``p`` would add: array [len(servers), len(hosts)].

        The share times :func:`scale_factor` of the server's current host
        and each destination.
        """
        return self.shares[p, servers][:, None] * self._k(p, servers, hosts)

    def scale(self, servers, hosts):
        """Scale factors for :func:`nova_kronos.scoring.candidate_imbalance`.

        :returns: array [P, len(servers), len(hosts)] of ``k``, or None when
            k = 1 for every policy.
        """
        if not (self.capacity > 0).any():
            return None
        return np.stack([self._k(p, servers, hosts)
                         for p in range(len(self.policies))])

    def apply(self, v, dst):
        """Record the move of candidate ``v`` to host index ``dst``.

        :returns: a token for :meth:`undo`.
        """
        src = self.src[v]
        token = (v, src, self.shares[:, v].copy(), self.loads[:, src].copy(),
                 self.loads[:, dst].copy(), dst)
        for p in range(len(self.policies)):
            added = self.added_load(p, np.array([v]), np.array([dst]))[0, 0]
            self.loads[p, src] -= self.shares[p, v]
            self.loads[p, dst] += added
            self.shares[p, v] = added
        self.free_vcpus[src] += self.vcpus[v]
        self.free_vcpus[dst] -= self.vcpus[v]
        self.free_memory_mb[src] += self.memory_mb[v]
        self.free_memory_mb[dst] -= self.memory_mb[v]
        g = self.group[v]
        if g >= 0:
            self.group_counts[g, src] -= 1
            self.group_counts[g, dst] += 1
        self.src[v] = dst
        self.moved[v] = True
        return token

    def undo(self, token):
        """Take back the latest :meth:`apply` that returned ``token``.

        Moves must be undone in the reverse order they were applied.
        """
        v, src, shares, src_loads, dst_loads, dst = token
        self.free_vcpus[src] -= self.vcpus[v]
        self.free_vcpus[dst] += self.vcpus[v]
        self.free_memory_mb[src] -= self.memory_mb[v]
        self.free_memory_mb[dst] += self.memory_mb[v]
        g = self.group[v]
        if g >= 0:
            self.group_counts[g, src] += 1
            self.group_counts[g, dst] -= 1
        self.shares[:, v] = shares
        self.loads[:, src] = src_loads
        self.loads[:, dst] = dst_loads
        self.src[v] = src
        self.moved[v] = False


def scale_factor(cap_src, cap_dst):
    """Factor turning a share of the source host into one of the destination.

    A share is relative to the host the server is on, so moving it scales
    it by ``cap_src / cap_dst``; where either capacity is unknown (0, also
    when the policy names no resource) hosts are taken as equal: 1. The
    planner's move model and the overlay of recent migrations both use it.

    :param cap_src: float or array of source capacities (vCPUs or MiB, as
        :func:`host_capacity` gives).
    :param cap_dst: float or array, broadcastable with ``cap_src``.
    :returns: float array of the broadcast shape.
    """
    cap_src = np.asarray(cap_src, dtype=float)
    cap_dst = np.asarray(cap_dst, dtype=float)
    known = (cap_src > 0) & (cap_dst > 0)
    return np.where(known, cap_src / np.where(known, cap_dst, 1.0), 1.0)


def host_capacity(host, resource):
    """Physical size of ``host`` in a policy's ``resource``; 0 if unknown.

    :param host: :class:`nova_kronos.fleet.Host`.
    :param resource: ``'vcpu'`` (vCPUs), ``'memory_mb'`` (MiB) or None.
    :returns: float (Placement's inventory total, before overcommit).
    """
    if resource == 'vcpu':
        return float(host.vcpus or 0)
    if resource == 'memory_mb':
        return float(host.memory_mb or 0)
    return 0.0

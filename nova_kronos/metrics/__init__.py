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


"""Metric sources: where host loads and server shares come from.

A source runs each enabled policy's ``host_query`` (and, for the rebalancer,
``vm_query``) once per cycle and returns a :class:`Snapshot`. Sources are
plugins in the stevedore namespace ``nova_kronos.metric_sources``.

This module is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses
import logging
import math

LOG = logging.getLogger(__name__)

NAMESPACE = 'nova_kronos.metric_sources'

#: Loads within this distance outside [0, 1] are clipped: float noise from
#: rate() arithmetic, not a broken query.
RANGE_TOLERANCE = 1e-6


class MetricsError(Exception):
    """The metric source cannot answer (down, slow, HTTP error, bad reply)."""


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """A host or server left out of one policy, with the reason.

    :ivar policy: policy name.
    :ivar kind: ``'host'`` or ``'vm'``.
    :ivar name: Nova host name, server UUID, or raw label value.
    :ivar reason: human-readable reason.
    :ivar error: True when it points at bad data (value out of range,
        duplicate sample) rather than missing data.
    """

    policy: str
    kind: str
    name: str
    reason: str
    error: bool = False


@dataclasses.dataclass
class PolicyData:
    """One policy's results.

    ``hosts`` maps host -> load, ``vms`` maps server UUID -> share.
    """

    hosts: dict = dataclasses.field(default_factory=dict)
    vms: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Snapshot:
    """Results of one collection cycle.

    :ivar data: dict policy name -> :class:`PolicyData`.
    :ivar exclusions: list of :class:`Exclusion`.
    """

    data: dict = dataclasses.field(default_factory=dict)
    exclusions: list = dataclasses.field(default_factory=list)


class MetricSource:
    """Base class of metric sources.

    Subclasses implement :meth:`query`, which returns raw
    ``[(labels: dict, value: float)]`` for one PromQL query;
    :meth:`collect` does the label mapping and validation.
    """

    def __init__(self, conf=None):
        self.conf = conf

    def query(self, promql, deadline=None):
        """Run one instant query.

        :param promql: PromQL text.
        :param deadline: optional :func:`time.monotonic` value by which
            the query must return or raise; a source that cannot be slow
            may ignore it.
        :returns: list of ``(labels dict, float value)``.
        :raises MetricsError: the source could not answer (in time).
        """
        raise NotImplementedError

    def collect(self, policy_set, hosts=None, vms=True, known_hosts=None,
                deadline=None):
        """Query every enabled policy once and validate the results.

        :param policy_set: :class:`nova_kronos.policy.PolicySet`.
        :param hosts: optional iterable of the Nova host names of interest;
            those missing from a policy's result are reported as excluded,
            and results for other hosts are dropped.
        :param vms: also run the ``vm_query`` of each policy.
        :param known_hosts: optional iterable of every Nova compute host;
            a sample whose label maps to none of them is reported as an
            error (the host mapping is likely wrong).
        :param deadline: optional :func:`time.monotonic` value: every
            query gets only the time left, so collect returns or raises by
            then (the Prometheus source: within a few tens of milliseconds,
            whatever the server does). None: each query is bounded by the
            source's own timeout only.
        :returns: :class:`Snapshot`.
        :raises MetricsError: a query failed or did not answer in time
            (no partial result is returned).
        """
        wanted = None if hosts is None else set(hosts)
        known = None if known_hosts is None else set(known_hosts)
        snap = Snapshot()
        mapping = policy_set.host_mapping
        for policy in policy_set.enabled:
            pdata = PolicyData()
            snap.data[policy.name] = pdata
            self._fill(policy, 'host', policy.host_query, policy.host_label,
                       mapping.to_host, pdata.hosts, snap.exclusions, wanted,
                       known, deadline)
            if wanted is not None:
                reported = {e.name for e in snap.exclusions
                            if e.policy == policy.name}
                for host in sorted(wanted - set(pdata.hosts) - reported):
                    snap.exclusions.append(Exclusion(
                        policy.name, 'host', host,
                        'no sample in the host_query result'))
            if vms:
                self._fill(policy, 'vm', policy.vm_query, policy.vm_label,
                           str, pdata.vms, snap.exclusions, None, None,
                           deadline)
        return snap

    def _query(self, promql, deadline):
        # Sources written before deadlines existed take the query only.
        if deadline is None:
            return self.query(promql)
        return self.query(promql, deadline=deadline)

    def _fill(self, policy, kind, promql, label, to_name, out, exclusions,
              wanted, known, deadline):
        duplicates = set()
        for labels, value in self._query(promql, deadline):
            raw = labels.get(label)
            if raw is None:
                exclusions.append(Exclusion(
                    policy.name, kind, repr(labels),
                    'sample has no %r label' % label, error=True))
                continue
            name = to_name(raw)
            if known is not None and name not in known:
                exclusions.append(Exclusion(
                    policy.name, kind, raw,
                    'label %s=%r maps to %r, which is no Nova compute host: '
                    'check host_mapping in the policies file'
                    % (label, raw, name), error=True))
                continue
            if wanted is not None and name not in wanted:
                continue
            if name in out or name in duplicates:
                duplicates.add(name)
                out.pop(name, None)
                continue
            if not isinstance(value, float) or math.isnan(value):
                exclusions.append(Exclusion(
                    policy.name, kind, name, 'value is not a number'))
                continue
            if not -RANGE_TOLERANCE <= value <= 1 + RANGE_TOLERANCE:
                exclusions.append(Exclusion(
                    policy.name, kind, name,
                    'value %g is outside [0, 1] (label %s=%r): check the '
                    'query' % (value, label, raw), error=True))
                continue
            out[name] = min(max(value, 0.0), 1.0)
        for name in sorted(duplicates):
            exclusions.append(Exclusion(
                policy.name, kind, name,
                'several samples map to it: make the query return one per '
                '%s' % kind, error=True))


def load_source(name, conf):
    """Load a metric source plugin by name through stevedore.

    :raises MetricsError: no such plugin.
    """
    from stevedore import driver
    try:
        mgr = driver.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                   invoke_args=(conf,))
    except Exception as e:
        raise MetricsError('cannot load metric source %r from namespace %s: '
                           '%s' % (name, NAMESPACE, e)) from e
    return mgr.driver

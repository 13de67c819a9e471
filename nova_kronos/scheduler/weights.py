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


"""Nova scheduler weigher scoring hosts from Prometheus.

Enable it by adding ``nova_kronos.scheduler.weights.PrometheusWeigher`` to
``[filter_scheduler] weight_classes`` in nova.conf, comma-separated after
``nova.scheduler.weights.all_weighers`` to keep Nova's own weighers.

Nova loads weighers by dotted path (``nova/loadables.py``). The weigher
judges every candidate host of a request at once (in ``weigh_objects``)
by the load it would have after taking the server
(:func:`nova_kronos.scheduler.loads.loads_after`: measured load, servers
placed since the last fetch, the request's flavor), scored by
:func:`nova_kronos.scoring.host_weights`: a value in [0, 1] in load units
(``1 - load`` for a spread policy). ``minval``/``maxval`` are fixed to
[0, 1] so that Nova's per-request normalisation (``nova/weights.py``
``normalize``) leaves the score as it is: a score difference ``d`` adds
``multiplier * d`` to a host's total, whatever the other candidates.
Nova's own weighers are stretched to [0, 1] per request, so each adds at
most its multiplier; ``doc/source/scheduler.rst`` works out the default.

A host without data gets the neutral score 0.5, and every host does when
Prometheus is down or slow; the weigher never raises.

The multiplier is ``[kronos] weight_multiplier``, overridden per aggregate
by the metadata key ``kronos_weight_multiplier`` through
``nova.scheduler.utils.get_weight_multiplier`` (the minimum wins across
aggregates, Nova's convention).
"""

from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
import numpy as np
from oslo_log import log as logging

from nova_kronos.scheduler import loads as loads_mod
from nova_kronos import scoring

LOG = logging.getLogger(__name__)

MULTIPLIER_KEY = 'kronos_weight_multiplier'
#: Most candidates whose exact (per-aggregate) multiplier is looked up to
#: predict Nova's choice.
CHOICE_CANDIDATES = 64


# id(HostState) -> (HostState, its aggregates, default, multiplier).
# nova-scheduler keeps one HostState per host and gives it a new list of
# the same Aggregate objects per request; an aggregate whose metadata
# changes is a new object (HostManager.update_aggregates).
_HOSTS = {}


class PrometheusWeigher(weights.BaseHostWeigher):
    """Spread or pack by the loads the policies' PromQL queries report.

    A higher weight means a more desirable host: the emptiest for spread
    policies, the fullest still within its thresholds for pack policies.
    """

    minval = 0.0
    maxval = 1.0

    #: ``[kronos] weight_multiplier`` as last read (weigh_objects refreshes
    #: it; Nova asks for the multiplier of every host of every request).
    _default = None

    def weight_multiplier(self, host_state):
        default = self._default
        if default is None:
            default = self._read_default()
        # Nova asks for every host of every request: remembered per host
        # while its aggregates and the default stay the same.
        aggregates = host_state.aggregates
        known = _HOSTS.get(id(host_state))
        if known is not None and known[0] is host_state and \
                known[1] == aggregates and known[2] == default:
            return known[3]
        try:
            value = default
            # Nova's helper only for hosts in an aggregate with the key.
            for aggregate in aggregates:
                if MULTIPLIER_KEY in aggregate.metadata:
                    value = scheduler_utils.get_weight_multiplier(
                        host_state, MULTIPLIER_KEY, default)
                    break
        except Exception:  # never break scheduling
            return default
        if len(_HOSTS) > 100000:
            _HOSTS.clear()
        _HOSTS[id(host_state)] = (host_state, list(aggregates), default,
                                  value)
        return value

    def _read_default(self):
        self._default = loads_mod.shared_cache().settings.kronos.\
            weight_multiplier
        return self._default

    def weigh_objects(self, weighed_obj_list, weight_properties):
        # Computed here, not per host: one pass over the candidates, and no
        # per-request state on the (shared) weigher.
        try:
            cache = loads_mod.shared_cache()
            table = cache.get(weight_properties)
            self._read_default()
            if table is None or not weighed_obj_list:
                return [scoring.NEUTRAL] * len(weighed_obj_list)
            hosts = [o.obj for o in weighed_obj_list]
            # The filter's, when it ran just before for the same hosts.
            after = cache.recall_after(weight_properties, table, hosts)
            if after is None:
                _names, after = loads_mod.loads_after(
                    table, cache.placements, hosts, weight_properties,
                    cache.clock())
            values = scoring.host_weights(after, table.modes, table.weights,
                                          table.thresholds)
            self._reserve(cache, weighed_obj_list, values, weight_properties)
            return values.tolist()
        except Exception:  # never break scheduling
            LOG.exception('kronos: weigher failed; using neutral weights')
            return [scoring.NEUTRAL] * len(weighed_obj_list)

    def _reserve(self, cache, objs, values, spec_obj):
        """Reserve the request on the host Nova will most likely choose.

        When this weigher runs, each WeighedHost already carries the sum of
        the weighers before it (``nova/weights.py``); README.rst lists this
        one last, so adding ``multiplier * value`` gives Nova's final
        ranking, whose first host nova-scheduler takes with the default
        ``host_subset_size = 1``. Exact multipliers (aggregate overrides)
        are looked up for the few best candidates only.
        """
        if spec_obj is None or scheduler_utils.request_is_rebuild(spec_obj):
            return
        vcpus, ram_mb = loads_mod.request_size(spec_obj)
        if not vcpus and not ram_mb:
            return
        default = self._default
        totals = np.fromiter((o.weight for o in objs), float, len(objs))
        totals += default * values
        best, best_total = None, None
        # Down the ranking with the default multiplier: a host with the
        # default is ranked exactly, and every host below it ranks lower
        # unless an aggregate raises its multiplier above the default
        # (values are >= 0), which the prediction does not foresee.
        order = np.argsort(-totals, kind='stable')[:CHOICE_CANDIDATES]
        for i in order:
            multiplier = self.weight_multiplier(objs[i].obj)
            total = objs[i].weight + multiplier * values[i]
            if best_total is None or total > best_total:
                best, best_total = i, total
            if multiplier == default:
                break
        cache.placements.reserve(objs[best].obj.host, vcpus, ram_mb,
                                 loads_mod.request_key(spec_obj),
                                 cache.clock())

    def _weigh_object(self, host_state, weight_properties):
        # Only reached if a caller bypasses weigh_objects.
        return scoring.NEUTRAL

"""Load-balancing policies: the policies.yaml model and its validation.

A policies file names one or more policies. Each policy turns two PromQL
queries into numbers the scorer understands:

* ``host_query`` returns one sample per hypervisor whose value is the host's
  load in [0, 1]; the label ``host_label`` names the host.
* ``vm_query`` returns one sample per server whose value is the server's share
  of its current host in [0, 1] (the load the host would lose if the server
  left); the label ``vm_label`` holds the Nova server UUID.

``mode`` says what the policy wants: ``spread`` (equal loads) or ``pack``
(consolidate onto the fullest hosts that stay under ``threshold``).
``threshold`` is the load ceiling: the filter rejects hosts above it and no
planned move may push a destination above it. Weights of the enabled
policies must sum to 1.

Every validation error is a :class:`PolicyError` whose message names the
file, the policy and the field, so an operator can fix the file at once.

This module is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses
import functools
import math
import re

import yaml

MODES = ('spread', 'pack')
RESOURCES = ('vcpu', 'memory_mb')
WEIGHT_SUM_TOLERANCE = 1e-6
_NAME_RE = re.compile(r'^[A-Za-z0-9_.-]+$')


class PolicyError(ValueError):
    """A policies file is missing, unreadable or invalid."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """One enabled or disabled policy, validated."""

    name: str
    mode: str
    weight: float
    threshold: float
    host_query: str
    host_label: str
    vm_query: str
    vm_label: str
    resource: str = None
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class HostMapping:
    """How a metric label value maps to a Nova host name.

    ``aliases`` (exact value -> host) are applied first; otherwise a
    ``:port`` suffix is removed when ``strip_port`` is set and everything
    after the first dot when ``strip_domain`` is set.
    """

    strip_port: bool = True
    strip_domain: bool = False
    aliases: tuple = ()

    @functools.cached_property
    def _alias_index(self):
        return dict(self.aliases)

    def to_host(self, value):
        """Return the Nova host name for a label value (a string)."""
        alias = self._alias_index.get(value)
        if alias is not None:
            return alias
        host = value
        if self.strip_port:
            # IPv6 literals come bracketed ("[::1]:9100"); keep them whole.
            if host.startswith('['):
                host = host[1:host.index(']')] if ']' in host else host
            elif host.count(':') == 1:
                host = host.split(':', 1)[0]
        if self.strip_domain and not _looks_like_ip(host):
            host = host.split('.', 1)[0]
        return host


def _looks_like_ip(value):
    return ':' in value or re.match(r'^\d+\.\d+\.\d+\.\d+$', value) is not None


@dataclasses.dataclass(frozen=True)
class PolicySet:
    """All policies of one file plus the host mapping."""

    policies: tuple
    host_mapping: HostMapping
    source: str = '<memory>'

    @property
    def enabled(self):
        """The enabled policies, in file order (a tuple of :class:`Policy`)."""
        return tuple(p for p in self.policies if p.enabled)

    def get(self, name):
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)


def load_file(path):
    """Read and validate a policies YAML file.

    :param path: filesystem path of the policies file.
    :returns: :class:`PolicySet`.
    :raises PolicyError: the file is unreadable, not YAML, or invalid; the
        message names the file, the policy and the field.
    """
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise PolicyError('%s: cannot read policies file: %s'
                          % (path, e.strerror or e)) from e
    return loads(text, source=path)


def loads(text, source='<string>'):
    """Parse and validate policies YAML text (see :func:`load_file`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError('%s: not valid YAML: %s' % (source, e)) from e
    return from_dict(data, source=source)


def from_dict(data, source='<dict>'):
    """Validate an already parsed policies document (see :func:`load_file`)."""
    if not isinstance(data, dict):
        raise PolicyError('%s: top level must be a mapping with a '
                          '"policies" key' % source)
    unknown = set(data) - {'policies', 'host_mapping'}
    if unknown:
        raise PolicyError('%s: unknown top-level field(s): %s'
                          % (source, ', '.join(sorted(unknown))))
    mapping = _host_mapping(data.get('host_mapping') or {}, source)
    raw = data.get('policies')
    if not isinstance(raw, dict) or not raw:
        raise PolicyError('%s: "policies" must be a non-empty mapping of '
                          'policy name to policy' % source)
    policies = tuple(_policy(name, spec, source) for name, spec in raw.items())
    enabled = [p for p in policies if p.enabled]
    if not enabled:
        raise PolicyError('%s: no policy is enabled' % source)
    total = math.fsum(p.weight for p in enabled)
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise PolicyError(
            '%s: weights of the enabled policies must sum to 1, got %g (%s)'
            % (source, total,
               ', '.join('%s=%g' % (p.name, p.weight) for p in enabled)))
    return PolicySet(policies=policies, host_mapping=mapping, source=source)


_POLICY_FIELDS = {'enabled', 'mode', 'weight', 'threshold', 'resource',
                  'host_query', 'host_label', 'vm_query', 'vm_label'}


def _policy(name, spec, source):
    where = '%s: policy %r' % (source, name)
    if not isinstance(name, str):
        raise PolicyError('%s: policy names must be strings; quote it (YAML '
                          'reads yes/no/on/off/true/false and numbers as '
                          'other types)' % where)
    if not _NAME_RE.match(name):
        raise PolicyError('%s: name must match %s' % (where, _NAME_RE.pattern))
    if not isinstance(spec, dict):
        raise PolicyError('%s: must be a mapping of fields' % where)
    unknown = set(spec) - _POLICY_FIELDS
    if unknown:
        raise PolicyError('%s: unknown field(s): %s'
                          % (where, ', '.join(sorted(unknown))))

    def field(key, kind, default=dataclasses.MISSING):
        if key not in spec:
            if default is dataclasses.MISSING:
                raise PolicyError('%s: field "%s" is required' % (where, key))
            return default
        value = spec[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PolicyError('%s: field "%s" must be a number, got %r'
                                  % (where, key, value))
            value = float(value)
            if not math.isfinite(value):
                raise PolicyError('%s: field "%s" must be finite'
                                  % (where, key))
            return value
        if not isinstance(value, kind):
            raise PolicyError('%s: field "%s" must be a %s, got %r'
                              % (where, key, kind.__name__, value))
        if kind is str and not value.strip():
            raise PolicyError('%s: field "%s" must not be empty'
                              % (where, key))
        return value

    enabled = field('enabled', bool, True)
    mode = field('mode', str)
    if mode not in MODES:
        raise PolicyError('%s: field "mode" must be one of %s, got %r'
                          % (where, ', '.join(MODES), mode))
    weight = field('weight', float)
    if not 0.0 <= weight <= 1.0:
        raise PolicyError('%s: field "weight" must be in [0, 1], got %g'
                          % (where, weight))
    threshold = field('threshold', float)
    if not 0.0 < threshold <= 1.0:
        raise PolicyError('%s: field "threshold" must be in (0, 1], got %g'
                          % (where, threshold))
    resource = field('resource', str, None)
    if resource is not None and resource not in RESOURCES:
        raise PolicyError('%s: field "resource" must be one of %s, got %r'
                          % (where, ', '.join(RESOURCES), resource))
    return Policy(name=name, mode=mode, weight=weight, threshold=threshold,
                  host_query=field('host_query', str),
                  host_label=field('host_label', str),
                  vm_query=field('vm_query', str),
                  vm_label=field('vm_label', str),
                  resource=resource, enabled=enabled)


def _host_mapping(spec, source):
    where = '%s: host_mapping' % source
    if not isinstance(spec, dict):
        raise PolicyError('%s: must be a mapping' % where)
    unknown = set(spec) - {'strip_port', 'strip_domain', 'aliases'}
    if unknown:
        raise PolicyError('%s: unknown field(s): %s'
                          % (where, ', '.join(sorted(unknown))))
    for key in ('strip_port', 'strip_domain'):
        if key in spec and not isinstance(spec[key], bool):
            raise PolicyError('%s: field "%s" must be true or false'
                              % (where, key))
    aliases = spec.get('aliases') or {}
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in aliases.items()):
        raise PolicyError('%s: field "aliases" must map label values '
                          '(strings) to Nova host names (strings)' % where)
    return HostMapping(strip_port=spec.get('strip_port', True),
                       strip_domain=spec.get('strip_domain', False),
                       aliases=tuple(sorted(aliases.items())))

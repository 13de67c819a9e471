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

Validation has two stages. The structure of the file (which fields exist,
their types, enums and ranges, the policy name pattern, the host_mapping
layout) is the JSON Schema :data:`SCHEMA` (Draft 2020-12), checked with the
``jsonschema`` library; its ``description`` strings document every field.
Mapping keys are checked to be strings before that, since YAML reads
``on``/``off``/``yes``/``no``/``true``/``false``, ``null``, numbers and dates
as other types and JSON Schema only knows string keys. What a schema cannot
say stays in code: weights and thresholds must be finite (not ``.nan``), at
least one policy must be enabled and the weights of the enabled policies
must sum to 1; these run only once the structure is valid.

Every validation error is a :class:`PolicyError` whose message names the
file, the policy and the field, so an operator can fix the file at once.
Structural errors are all reported, one per line, in the order their
fields appear in the file (a missing field at the position of its policy);
each line reads ``<file>: policy '<name>': field "<field>" <problem>``, e.g.
``/etc/nova/kronos-policies.yaml: policy 'cpu': field "mode" must be one of
spread, pack, got 'sideways'``.

This module is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses
import datetime
import functools
import math
import re

import jsonschema
import yaml

MODES = ('spread', 'pack')
RESOURCES = ('vcpu', 'memory_mb')
WEIGHT_SUM_TOLERANCE = 1e-6
_NAME_PATTERN = r'^[A-Za-z0-9_.-]+$'
# "Contains a non-blank character": jsonschema applies ``pattern`` with
# re.search, so this rejects "" and whitespace-only strings.
_NON_BLANK = r'\S'


def _text(description, **extra):
    """A non-blank string field."""
    return dict(type='string', pattern=_NON_BLANK, description=description,
                **extra)


SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    'title': 'nova-kronos policies file',
    'description': 'Load-balancing policies for the nova-kronos weigher, '
                   'filter and rebalance command.',
    'type': 'object',
    'required': ['policies'],
    'additionalProperties': False,
    'properties': {
        'host_mapping': {'$ref': '#/$defs/host_mapping'},
        'policies': {
            'description': 'Policy name -> policy. Names are made of '
                           'letters, digits, "_", "." and "-"; at least one '
                           'policy must be enabled and the weights of the '
                           'enabled policies must sum to 1.',
            'type': 'object',
            'minProperties': 1,
            'propertyNames': {'pattern': _NAME_PATTERN},
            'additionalProperties': {'$ref': '#/$defs/policy'},
        },
    },
    '$defs': {
        'host_mapping': {
            'description': 'How a metric label value becomes a Nova host '
                           'name: "aliases" first, then "strip_port", then '
                           '"strip_domain". Optional; may be empty.',
            'type': ['object', 'null'],
            'additionalProperties': False,
            'properties': {
                'strip_port': {
                    'description': 'Remove a ":port" suffix '
                                   '("compute1:9100" -> "compute1"); '
                                   'bracketed IPv6 literals lose their '
                                   'brackets and port.',
                    'type': 'boolean',
                    'default': True,
                },
                'strip_domain': {
                    'description': 'Keep only the part before the first dot '
                                   '("compute1.example.org" -> "compute1"); '
                                   'IP addresses are left whole.',
                    'type': 'boolean',
                    'default': False,
                },
                'aliases': {
                    'description': 'Exact label value -> Nova host name, '
                                   'applied before the two rules above.',
                    'type': ['object', 'null'],
                    'additionalProperties': {'type': 'string'},
                    'default': {},
                },
            },
        },
        'policy': {
            'description': 'One policy: two PromQL queries giving each '
                           'hypervisor\'s load and each server\'s share of '
                           'its host, all in [0, 1].',
            'type': 'object',
            'required': ['mode', 'weight', 'threshold', 'host_query',
                         'host_label', 'vm_query', 'vm_label'],
            'additionalProperties': False,
            'properties': {
                'enabled': {
                    'description': 'false keeps the policy in the file but '
                                   'ignores it; its weight does not count.',
                    'type': 'boolean',
                    'default': True,
                },
                'mode': {
                    'description': '"spread" balances the loads of the '
                                   'hosts; "pack" consolidates onto the '
                                   'fullest hosts that stay under '
                                   '"threshold".',
                    'enum': list(MODES),
                },
                'weight': {
                    'description': 'Share of this policy in the combined '
                                   'score, in [0, 1]; the weights of the '
                                   'enabled policies must sum to 1.',
                    'type': 'number',
                    'minimum': 0,
                    'maximum': 1,
                },
                'threshold': {
                    'description': 'Load ceiling in (0, 1]: the filter '
                                   'rejects hosts above it and no planned '
                                   'move may push a destination above it.',
                    'type': 'number',
                    'exclusiveMinimum': 0,
                    'maximum': 1,
                },
                'resource': {
                    'description': 'The Nova resource whose capacity '
                                   'sizes the hosts for this policy: a '
                                   'server\'s share moves to a destination '
                                   'scaled by the ratio of the capacities. '
                                   'Without it hosts are taken as equal in '
                                   'size.',
                    'enum': list(RESOURCES),
                },
                'host_query': _text(
                    'PromQL returning one sample per hypervisor; the value '
                    'is the host\'s load in [0, 1].'),
                'host_label': _text(
                    'Label of the host_query samples that names the host '
                    '(mapped to a Nova host name by host_mapping).'),
                'vm_query': _text(
                    'PromQL returning one sample per server; the value is '
                    'the server\'s share of its current host in [0, 1].'),
                'vm_label': _text(
                    'Label of the vm_query samples holding the Nova server '
                    'UUID.'),
            },
        },
    },
}
"""The JSON Schema (Draft 2020-12) of the policies file's structure."""

jsonschema.Draft202012Validator.check_schema(SCHEMA)
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


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
    lines = _key_errors(data, source) or _schema_errors(data, source)
    if lines:
        raise PolicyError('\n'.join(lines))
    raw_mapping = data.get('host_mapping') or {}
    mapping = HostMapping(
        aliases=tuple(sorted((raw_mapping.get('aliases') or {}).items())),
        **{k: raw_mapping[k] for k in ('strip_port', 'strip_domain')
           if k in raw_mapping})
    policies = tuple(_policy(name, spec, source)
                     for name, spec in data['policies'].items())
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


def _policy(name, spec, source):
    """A :class:`Policy` from a schema-valid spec (plus what JSON lacks)."""
    for key in ('weight', 'threshold'):
        # JSON has no NaN, so the schema's bounds let a YAML ".nan" through.
        if not math.isfinite(spec[key]):
            raise PolicyError('%s: field "%s" must be a finite number, '
                              'got %r' % (_where(source, ['policies', name]),
                                          key, spec[key]))
    return Policy(name=name, mode=spec['mode'], weight=float(spec['weight']),
                  threshold=float(spec['threshold']),
                  host_query=spec['host_query'],
                  host_label=spec['host_label'], vm_query=spec['vm_query'],
                  vm_label=spec['vm_label'],
                  **{k: spec[k] for k in ('resource', 'enabled') if k in spec})


# -- turning problems into operator messages ---------------------------------

_YAML_TYPES = ('YAML reads unquoted yes/no/on/off/true/false, null, numbers '
               'and dates as other types')


def _key_errors(data, source, path=()):
    """Lines for mapping keys that are not strings.

    JSON object keys are always strings, so the schema cannot see these.
    """
    lines = []
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                if list(path) == ['policies']:
                    lines.append(
                        '%s: policy names must be strings; quote it (%s)'
                        % (_where(source, ['policies', key]), _YAML_TYPES))
                else:
                    subject = _subject(list(path))
                    lines.append('%s: %s%s %r must be a string; quote it (%s)'
                                 % (_where(source, list(path)),
                                    subject + ': ' if subject else '',
                                    'key' if path else 'top-level key', key,
                                    _YAML_TYPES))
            else:
                lines.extend(_key_errors(value, source, path + (key,)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            lines.extend(_key_errors(value, source, path + (i,)))
    return lines


def _schema_errors(data, source):
    """All schema violations as message lines, in file order."""
    errors = []
    for error in _VALIDATOR.iter_errors(data):
        path = list(error.absolute_path)
        if 'propertyNames' in error.absolute_schema_path:
            # The key itself is the instance; name it as the policy.
            path.append(error.instance)
        errors.append((_position(data, path),
                       [str(p) for p in error.relative_schema_path],
                       path, error))
    errors.sort(key=lambda e: e[:2])
    lines = []
    for _, _, path, error in errors:
        for line in _describe(source, path, error):
            if line not in lines:
                lines.append(line)
    return lines


def _position(data, path):
    """Where ``path`` is in the document, as a sortable tuple of indexes."""
    position = []
    for key in path:
        if isinstance(data, dict):
            keys = list(data)
            position.append(keys.index(key) if key in keys else len(keys))
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int):
            position.append(key)
            data = data[key] if key < len(data) else None
        else:
            break
    return tuple(position)


def _where(source, path):
    """``file``, ``file: policy 'x'`` or ``file: host_mapping``."""
    if len(path) >= 2 and path[0] == 'policies':
        return '%s: policy %r' % (source, path[1])
    if path and path[0] == 'host_mapping':
        return '%s: host_mapping' % source
    return source


def _subject(path):
    """The field part of a path (after :func:`_where`), or ''."""
    if len(path) >= 2 and path[0] == 'policies':
        rest = path[2:]
    elif path and path[0] == 'host_mapping':
        rest = path[1:]
    else:
        rest = path
    if not rest:
        return ''
    subject = 'field "%s"' % rest[0]
    if len(rest) > 1:
        subject += ': entry %s' % ' '.join(repr(k) for k in rest[1:])
    return subject


_TYPE_NAMES = {'object': 'a mapping', 'string': 'a string',
               'number': 'a number', 'boolean': 'true or false',
               'array': 'a list', 'integer': 'an integer'}


def _shown(value):
    return 'null' if value is None else repr(value)


def _quote_hint(error):
    """Why a non-string value ended up where a string belongs."""
    value = error.instance
    expected = error.validator_value
    if error.validator == 'type':
        wants_string = expected == 'string'
    elif error.validator == 'enum':
        wants_string = all(isinstance(v, str) for v in expected)
    else:
        wants_string = False
    if not wants_string:
        return ''
    if isinstance(value, bool):
        return (' (YAML reads unquoted yes/no/on/off/true/false as a '
                'boolean; quote it to keep it a string)')
    if error.validator == 'type' and isinstance(
            value, (int, float, datetime.date)):
        return ' (YAML reads unquoted numbers and dates as such; quote it)'
    return ''


def _range(schema):
    low = ('[%g' % schema['minimum'] if 'minimum' in schema else
           '(%g' % schema['exclusiveMinimum']
           if 'exclusiveMinimum' in schema else '(-inf')
    high = ('%g]' % schema['maximum'] if 'maximum' in schema else
            '%g)' % schema['exclusiveMaximum']
            if 'exclusiveMaximum' in schema else 'inf)')
    return '%s, %s' % (low, high)


def _problem(path, error):
    """What is wrong, as phrases following the location and field."""
    kind, value, schema = error.validator, error.instance, error.schema
    if kind == 'type':
        if not path:
            return ['top level must be a mapping with a "policies" key, got '
                    '%s' % _shown(value)]
        types = error.validator_value
        types = [types] if isinstance(types, str) else types
        return ['must be %s, got %s%s' % (
            ' or '.join(_TYPE_NAMES.get(t, t) for t in types if t != 'null'),
            _shown(value), _quote_hint(error))]
    if kind == 'enum':
        return ['must be one of %s, got %s%s' % (
            ', '.join(str(v) for v in error.validator_value), _shown(value),
            _quote_hint(error))]
    if kind in ('minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'):
        return ['must be in %s, got %g' % (_range(schema), value)]
    if kind == 'required':
        return ['field "%s" is required' % key
                for key in error.validator_value if key not in value]
    if kind == 'additionalProperties':
        unknown = sorted(set(value) - set(schema.get('properties', ())))
        return ['unknown %sfield(s) %s (expected: %s)' % (
            '' if path else 'top-level ',
            ', '.join('"%s"' % k for k in unknown),
            ', '.join(schema.get('properties', ())))]
    if kind == 'minProperties':
        return ['must not be empty']
    if kind == 'pattern' and 'propertyNames' in error.absolute_schema_path:
        return ['name must match %s (letters, digits, "_", "." and "-")'
                % error.validator_value]
    if kind == 'pattern' and error.validator_value == _NON_BLANK:
        return ['must not be empty']
    # A rule added to SCHEMA without a message here: still name the place.
    return ['violates the schema rule "%s": %s'
            % (kind, _shown(error.validator_value))]


def _describe(source, path, error):
    """The message lines for one :class:`jsonschema.ValidationError`."""
    where, subject = _where(source, path), _subject(path)
    if path == ['policies'] and error.validator in ('type', 'minProperties'):
        return ['%s: field "policies" must be a non-empty mapping of policy '
                'name to policy, got %s' % (source, _shown(error.instance))]
    lines = []
    for problem in _problem(path, error):
        if subject and not problem.startswith('field "'):
            problem = '%s %s' % (subject, problem)
        lines.append('%s: %s' % (where, problem))
    return lines

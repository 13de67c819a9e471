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

Reading is bounded, so a hostile or broken file fails fast with a clear
message instead of a traceback or a hang: the file is read as bytes and
refused when larger than :data:`MAX_FILE_BYTES`, when it is not UTF-8 or
when it holds a control character (binary data; the message gives the line
and byte offset). YAML is then composed with limits: at most
:data:`MAX_NODES` nodes once every alias is counted as the size of the node
it refers to (anchors sharing a query stay cheap, a "billion laughs" file is
refused before anything is expanded), at most :data:`MAX_DEPTH` levels of
nesting, and no alias inside the node it refers to. A key given twice in
any mapping (a policy name, a field) is an error naming both lines; YAML
itself would keep the last one silently.

Every validation error is a :class:`PolicyError` whose message names the
file, the policy and the field, so an operator can fix the file at once.
A value quoted from the file is cut at :data:`SHOWN_CHARS` characters and at
most :data:`MAX_ERROR_LINES` problems are listed.
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

from nova_kronos import text as text_mod

MODES = ('spread', 'pack')
RESOURCES = ('vcpu', 'memory_mb')
WEIGHT_SUM_TOLERANCE = 1e-6
_NAME_PATTERN = r'^[A-Za-z0-9_.-]+$'
# "Contains a non-blank character": jsonschema applies ``pattern`` with
# re.search, so this rejects "" and whitespace-only strings.
_NON_BLANK = r'\S'

#: Largest policies file read, in bytes (1 MiB); real files are a few KiB.
MAX_FILE_BYTES = 1024 * 1024
#: Largest document in YAML nodes (scalars, sequences, mappings), counting
#: an alias as the size of the node it refers to.
MAX_NODES = 100000
#: Deepest nesting of sequences and mappings; a valid file needs 4.
MAX_DEPTH = 32
#: Characters of a value from the file quoted in an error message.
SHOWN_CHARS = 80
#: Problems listed in one error message; the rest are counted.
MAX_ERROR_LINES = 20


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
                'settle_time': {
                    'description': 'Seconds (> 0) after a live migration '
                                   'until both queries fully reflect it. '
                                   'Without it: the longest window of the '
                                   'two queries (a range inside a subquery '
                                   'counts as the sum of both windows) '
                                   'plus one scrape interval. Set it when '
                                   'a query uses offset, which that rule '
                                   'does not count.',
                    'type': 'number',
                    'exclusiveMinimum': 0,
                },
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
    settle_time: float = None

    def settle_seconds(self, scrape_interval):
        """Seconds until this policy's metrics fully reflect a migration.

        That is how long after a live migration ends both queries return
        values computed only from samples taken after it.

        :param scrape_interval: seconds between two scrapes of the
            exporters (a number >= 0).
        :returns: float: ``settle_time`` when the policy declares it, else
            the larger :func:`promql_range_seconds` of ``host_query`` and
            ``vm_query`` plus ``scrape_interval``.
        :raises ValueError: a query holds a window that is not a
            Prometheus duration (only when ``settle_time`` is not set).
        """
        if self.settle_time is not None:
            return float(self.settle_time)
        return max(promql_range_seconds(self.host_query),
                   promql_range_seconds(self.vm_query)) + scrape_interval


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


# -- PromQL windows ----------------------------------------------------------

_DURATION_UNITS_MS = (('y', 365 * 86400000), ('w', 7 * 86400000),
                      ('d', 86400000), ('h', 3600000), ('m', 60000),
                      ('s', 1000), ('ms', 1))
# Prometheus' duration syntax: whole numbers, units from the largest down,
# each at most once ("1h30m", "90s", "250ms"); "0" alone is allowed too.
_DURATION = re.compile(''.join(r'(?:(\d+)%s)?' % unit
                               for unit, _ in _DURATION_UNITS_MS) + '$')
_WINDOW = re.compile(r'\s*(\w*)\s*(?:(:)\s*(\w*)\s*)?$')
_TOKEN = re.compile(r"""
    (?P<skip> \s+ | \#[^\n]* )                      # blanks, comments
  | (?P<str> "(?:[^"\\]|\\.)*(?:"|$) | '(?:[^'\\]|\\.)*(?:'|$)
           | `[^`]*(?:`|$) )                        # strings, unclosed too
  | (?P<window> \[[^\]]*\] )                        # [5m] or [10m:1m]
  | (?P<unclosed> \[ )
  | (?P<name> [A-Za-z_:][A-Za-z0-9_:]* )
  | (?P<number> (?:\d+\.?\d*|\.\d+)[A-Za-z0-9_.]* ) # 1e3, 0x1f, 5m
  | (?P<group> [(){}] )
  | (?P<other> . )
""", re.VERBOSE | re.DOTALL)
# Words that join two operands: a subquery's operand never reaches past
# one of them to the left.
_JOINING_WORDS = frozenset(('and', 'or', 'unless', 'on', 'ignoring',
                            'group_left', 'group_right', 'bool', 'atan2',
                            'offset'))
_OPENER = {')': '(', '}': '{'}


def _duration_ms(text, query):
    if text == '0':
        return 0
    match = _DURATION.match(text)
    if not (match and any(match.groups())):
        raise ValueError('%s in PromQL %s is not a Prometheus duration'
                         % (_shown(text), _shown(query)))
    return sum(int(count) * unit_ms for count, (_, unit_ms)
               in zip(match.groups(), _DURATION_UNITS_MS) if count)


def _operand_start(tokens, openers, index):
    """Index of the first token of the operand before ``tokens[index]``.

    The operand of a subquery is a name, a ``{...}`` or ``(...)`` group
    with or without a name before it, or an aggregation
    (``sum by (a) (...)``, ``sum (...) by (a)``): at most four steps back.
    """
    start = index
    for _ in range(4):
        before = start - 1
        if before < 0:
            break
        kind, text = tokens[before]
        if before in openers:
            start = openers[before]
        elif kind in ('name', 'number') and text not in _JOINING_WORDS:
            start = before
        else:
            break
    return start


def promql_range_seconds(query):
    """How far back in time a PromQL query reads, in seconds.

    That is the largest range (``rate(x[5m])``: 300.0) or subquery window
    (``max_over_time(x[1h30m:1m])``: 5400.0). A window inside the operand
    of a subquery adds to the subquery's: a sample leaves the result only
    once every inner evaluation that saw it has left the outer window, so
    ``max_over_time(rate(x[5m])[10m:1m])`` reads 600 + 300 = 900.0 seconds
    back. Subquery steps, ``offset`` and ``@`` are not counted. Text in
    strings and comments is ignored (``up{job="a[5m]"}``: 0.0).

    The query is scanned, not parsed: whether it is valid PromQL is for
    Prometheus to say (``PrometheusSource.check_syntax``).

    :param query: PromQL text.
    :returns: seconds as a float; 0.0 when the query has no window.
    :raises ValueError: a ``[...]`` is not closed or holds no Prometheus
        duration (whole numbers with units ms, s, m, h, d, w, y, largest
        first: ``1h30m``).
    """
    tokens = []     # (kind, text)
    openers = {}    # index of a ")" or "}" -> index of its "(" or "{"
    stack = []
    for match in _TOKEN.finditer(query):
        kind, text = match.lastgroup, match.group()
        if kind == 'skip':
            continue
        if kind == 'unclosed':
            raise ValueError('"[" at character %d of PromQL %s is not '
                             'closed' % (match.start() + 1, _shown(query)))
        if kind == 'group':
            if text in '({':
                stack.append((text, len(tokens)))
            elif stack and stack[-1][0] == _OPENER[text]:
                openers[len(tokens)] = stack.pop()[1]
        tokens.append((kind, text))
    windows = {}    # token index -> milliseconds
    changes = {}    # token index -> ms a subquery adds there (or removes)
    for index, (kind, text) in enumerate(tokens):
        if kind != 'window':
            continue
        match = _WINDOW.match(text[1:-1])
        if match is None:
            raise ValueError('%s in PromQL %s is neither a range [5m] nor a '
                             'subquery [10m:1m]'
                             % (_shown(text), _shown(query)))
        windows[index] = _duration_ms(match.group(1), query)
        if match.group(3):
            _duration_ms(match.group(3), query)  # the step: checked only
        if match.group(2):
            start = _operand_start(tokens, openers, index)
            changes[start] = changes.get(start, 0) + windows[index]
            changes[index] = changes.get(index, 0) - windows[index]
    # One pass in token order keeps the sum of the subqueries whose
    # operand the current token is in.
    longest = enclosing = 0
    for index in sorted(set(windows) | set(changes)):
        enclosing += changes.get(index, 0)
        if index in windows:
            longest = max(longest, windows[index] + enclosing)
    return longest / 1000.0


def load_file(path):
    """Read and validate a policies YAML file.

    :param path: filesystem path of the policies file (UTF-8 text of at
        most :data:`MAX_FILE_BYTES` bytes).
    :returns: :class:`PolicySet`.
    :raises PolicyError: the file is unreadable, too large, not UTF-8 text,
        not YAML, or invalid; the message starts with the path and names
        the policy and the field (or the line).
    """
    try:
        with open(path, 'rb') as f:
            # One byte more than allowed tells "too large" without reading
            # (or stat-ing) the whole of a huge or endless file.
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise PolicyError('%s: cannot read policies file: %s'
                          % (path, e.strerror or e)) from e
    return loads(raw, source=path)


def loads(text, source='<string>'):
    """Parse and validate policies YAML (see :func:`load_file`).

    :param text: the document, as ``str`` or as UTF-8 ``bytes``.
    :param source: the name error messages start with.
    """
    text = _decoded(text, source)
    return from_dict(_parse(text, source), source=source)


# What YAML 1.1 does not take as text (strict UTF-8 decoding already
# excludes surrogates): C0 controls but tab and line breaks, DEL, C1
# controls but NEL, U+FFFE and U+FFFF. Checked here to say where.
_NOT_TEXT = re.compile(
    r'[^\t\n\r\x20-\x7e\x85\xa0-\ufffd\U00010000-\U0010ffff]')


def _decoded(text, source):
    """The document as ``str``, once size and encoding are checked."""
    raw = (text.encode('utf-8', 'surrogatepass') if isinstance(text, str)
           else bytes(text))
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError('%s: larger than %d bytes (1 MiB); a policies file '
                          'is a few KiB' % (source, MAX_FILE_BYTES))
    try:
        text, not_utf8 = raw.decode('utf-8'), None
    except UnicodeDecodeError as e:
        # Report whichever problem comes first in the file.
        text, not_utf8 = raw[:e.start].decode('utf-8'), e
    bad = _NOT_TEXT.search(text)
    if bad:
        at = bad.start()
        line_start = text.rfind('\n', 0, at) + 1
        raise PolicyError(
            '%s: line %d, column %d (byte offset %d): character U+%04X is '
            'not allowed in YAML; a policies file is text, not binary data'
            % (source, text.count('\n', 0, at) + 1, at - line_start + 1,
               len(text[:at].encode('utf-8')), ord(bad.group())))
    if not_utf8 is not None:
        at = not_utf8.start
        raise PolicyError(
            '%s: line %d (byte offset %d): byte 0x%02X is not UTF-8; save '
            'the file as UTF-8 text'
            % (source, raw.count(b'\n', 0, at) + 1, at, raw[at]))
    return text


def _parse(text, source):
    loader = _Loader(text, source)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        # Lines of PyYAML's message may quote the file (an alias name, a
        # tag); its snippets of the file are already short.
        raise PolicyError('%s: not valid YAML: %s' % (source, '\n'.join(
            _clip(line, 2 * SHOWN_CHARS)
            for line in str(e).splitlines()))) from e
    finally:
        loader.dispose()
    if loader.duplicates:
        raise PolicyError(_joined(
            source, [line for _, line in sorted(loader.duplicates)]))
    return data


class _Loader(yaml.SafeLoader):
    """SafeLoader with the limits of the module documentation.

    Composing counts nodes (an alias as the size of its node), depth and
    recursive aliases; constructing a mapping records keys given twice in
    :attr:`duplicates` as ``(line, message)``.
    """

    def __init__(self, text, source):
        super().__init__(text)
        self.name = source  # PyYAML's marks say in "<name>", line ...
        self.source = source
        self.duplicates = []
        self._nodes = 0
        self._depth = 0
        self._sizes = {}    # node -> nodes it stands for, aliases expanded
        self._parents = {}  # node -> (parent node, key node or list index)
        self._keys = {}     # mapping node -> its key nodes as written

    def _refuse(self, mark, problem):
        raise PolicyError('%s: line %d: %s' % (self.source, mark.line + 1,
                                               problem))

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(target)
                if size is None:
                    self._refuse(event.start_mark, 'alias *%s is inside the '
                                 'node it refers to (line %d); recursive '
                                 'structures are not allowed'
                                 % (_clip(event.anchor),
                                    target.start_mark.line + 1))
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._refuse(self.peek_event().start_mark,
                         'nested deeper than %d levels' % MAX_DEPTH)
        before = self._nodes
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, node.start_mark)
        self._sizes[node] = self._nodes - before
        self._parents[node] = (parent, index)
        if isinstance(node, yaml.MappingNode):
            # Merge keys ("<<") get replaced when the mapping is built.
            self._keys[node] = [key for key, _ in node.value]
        return node

    def _count(self, nodes, mark):
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            self._refuse(mark, 'the document has more than %d YAML nodes, '
                         'counting an alias (*name) as the node it refers '
                         'to; a policies file needs far fewer' % MAX_NODES)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self._find_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _find_duplicates(self, node):
        first = {}
        for key_node in self._keys.get(node, ()):
            if key_node.tag == 'tag:yaml.org,2002:merge':
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable: SafeLoader reports it
            if seen is not key_node:
                self.duplicates.append((
                    key_node.start_mark.line,
                    _twice(self.source, self._path(node), key, seen,
                           key_node)))

    def _path(self, node):
        """Keys (raw scalar text) and list indexes from the root."""
        path = []
        parent, index = self._parents.get(node, (None, None))
        while parent is not None:
            if isinstance(index, yaml.ScalarNode):
                path.append(index.value)
            elif isinstance(index, int):
                path.append(index)
            else:
                path.append('?')  # a complex key
            parent, index = self._parents.get(parent, (None, None))
        return path[::-1]


def _twice(source, path, key, first, second):
    """The message for a key given at the key nodes ``first``, ``second``."""
    lines = '(lines %d and %d' % (first.start_mark.line + 1,
                                  second.start_mark.line + 1)
    if not isinstance(key, str):
        # "on" and "yes" are one key to YAML (True): say so, in their text.
        lines += ', as %s and %s, both %s to YAML' % (
            _shown(first.value), _shown(second.value), _shown(key))
        key = first.value
    lines += ')'
    if path == ['policies']:
        return '%s: policy %s is defined twice %s; rename or remove one' % (
            source, _shown(key), lines)
    subject = _subject(path + [key])
    return '%s: %s%s is given twice %s; remove one' % (
        _where(source, path + [key]), '' if path else 'top-level ', subject,
        lines)


def from_dict(data, source='<dict>'):
    """Validate an already parsed policies document (see :func:`load_file`)."""
    lines = _key_errors(data, source) or _schema_errors(data, source)
    if lines:
        raise PolicyError(_joined(source, lines))
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
            % (source, total, _listed('%s=%g' % (_clip(p.name), p.weight)
                                      for p in enabled)))
    return PolicySet(policies=policies, host_mapping=mapping, source=source)


def _policy(name, spec, source):
    """A :class:`Policy` from a schema-valid spec (plus what JSON lacks)."""
    for key in ('weight', 'threshold', 'settle_time'):
        # JSON has no NaN or infinity, so the schema's bounds let YAML's
        # ".nan" (and ".inf" where there is no maximum) through.
        if key in spec and not math.isfinite(spec[key]):
            raise PolicyError('%s: field "%s" must be a finite number, '
                              'got %r' % (_where(source, ['policies', name]),
                                          key, spec[key]))
    if 'settle_time' not in spec:
        # settle_seconds() reads the windows: refuse here what it cannot.
        for key in ('host_query', 'vm_query'):
            try:
                promql_range_seconds(spec[key])
            except ValueError as e:
                raise PolicyError('%s: field "%s": %s; fix it or set '
                                  'settle_time' % (
                                      _where(source, ['policies', name]),
                                      key, e)) from e
    return Policy(name=name, mode=spec['mode'], weight=float(spec['weight']),
                  threshold=float(spec['threshold']),
                  host_query=spec['host_query'],
                  host_label=spec['host_label'], vm_query=spec['vm_query'],
                  vm_label=spec['vm_label'],
                  settle_time=(float(spec['settle_time'])
                               if 'settle_time' in spec else None),
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
                    lines.append('%s: %s%s %s must be a string; quote it (%s)'
                                 % (_where(source, list(path)),
                                    subject + ': ' if subject else '',
                                    'key' if path else 'top-level key',
                                    _shown(key), _YAML_TYPES))
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
        return '%s: policy %s' % (source, _shown(path[1]))
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
    subject = 'field "%s"' % _clip(str(rest[0]))
    if len(rest) > 1:
        subject += ': entry %s' % ' '.join(_shown(k) for k in rest[1:])
    return subject


_TYPE_NAMES = {'object': 'a mapping', 'string': 'a string',
               'number': 'a number', 'boolean': 'true or false',
               'array': 'a list', 'integer': 'an integer'}


def _clip(text, limit=SHOWN_CHARS):
    return text_mod.clip(text, limit)


def _shown(value):
    """A value from the file as messages quote it: repr, cut if long.

    Strings longer than :data:`SHOWN_CHARS` read ``'abc...' (5000
    characters)``, other values ``[1, 2, ... (5000 characters)``.
    """
    if value is None:
        return 'null'
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        cut = repr(value[:SHOWN_CHARS])
        return '%s...%s (%d characters)' % (cut[:-1], cut[-1], len(value))
    return _clip(repr(value))


def _listed(items, limit=10):
    """``items`` joined with commas, the ones past ``limit`` counted."""
    items = list(items)
    more = len(items) - limit
    return ', '.join(items[:limit]) + (' and %d more' % more if more > 0
                                       else '')


def _joined(source, lines):
    """The message of a :class:`PolicyError`: at most MAX_ERROR_LINES."""
    more = len(lines) - MAX_ERROR_LINES
    if more > 0:
        lines = lines[:MAX_ERROR_LINES] + [
            '%s: and %d more problem(s)' % (source, more)]
    return '\n'.join(lines)


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
            _listed('"%s"' % _clip(k) for k in unknown),
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

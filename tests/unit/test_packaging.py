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


"""The runtime package holds only the product.

Operators install nova-kronos into nova-scheduler's environment, where the
test requirements are absent: no module of ``nova_kronos`` may import a
test-only library or the test harness, and every entry point must name a
module of the package.
"""

import ast
import configparser
import importlib.util
import os

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, 'nova_kronos')

#: Top-level names of test-requirements.txt libraries and of our harness.
TEST_ONLY = {'fixtures', 'testtools', 'oslotest', 'stestr', 'wsgi_intercept',
             'lxml', 'placement', 'tests', 'hypothesis', 'google', 'snappy',
             'cramjam'}


def _imported_top_levels(path):
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module.split('.')[0]


def _entry_points():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    return cfg['entry_points']


class TestRuntimePackage(testtools.TestCase):

    def test_no_test_only_import(self):
        offenders = []
        for dirpath, _, files in os.walk(PACKAGE):
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = os.path.join(dirpath, name)
                for lineno, top in _imported_top_levels(path):
                    if top in TEST_ONLY:
                        offenders.append('%s:%d imports %s' % (
                            os.path.relpath(path, ROOT), lineno, top))
        self.assertEqual([], offenders)

    def test_entry_points_name_package_modules(self):
        seen = 0
        for group, lines in _entry_points().items():
            for line in filter(None, lines.splitlines()):
                name, target = (x.strip() for x in line.split('=', 1))
                module = target.split(':')[0]
                self.assertTrue(module.startswith('nova_kronos.'),
                                '%s %s -> %s' % (group, name, target))
                self.assertIsNotNone(importlib.util.find_spec(module),
                                     '%s %s -> %s' % (group, name, target))
                seen += 1
        self.assertGreater(seen, 0)

    def test_no_demo_console_script(self):
        scripts = _entry_points()['console_scripts']
        self.assertEqual(['nova-kronos-manage'],
                         [line.split('=')[0].strip()
                          for line in scripts.splitlines() if line.strip()])

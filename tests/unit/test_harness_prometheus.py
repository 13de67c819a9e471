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

"""tests.harness.prometheus.require_prometheus: skip locally, fail in CI.

No Prometheus is needed: ``$KRONOS_PROMETHEUS_BIN`` points at a stand-in
executable, or at a file that is not executable.
"""

import os
import subprocess
import sys

import fixtures
import testtools

from tests.harness import prometheus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TestRequirePrometheus(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.not_executable = os.path.join(self.dir, 'prometheus')
        with open(self.not_executable, 'w') as f:
            f.write('not a program\n')
        os.chmod(self.not_executable, 0o644)

    def _env(self, binary, ci):
        self.useFixture(fixtures.EnvironmentVariable(
            prometheus.ENV_BINARY, binary))
        self.useFixture(fixtures.EnvironmentVariable('CI', ci))

    def test_binary_found(self):
        fake = os.path.join(self.dir, 'fake-prometheus')
        with open(fake, 'w') as f:
            f.write('#!/bin/sh\nexit 0\n')
        os.chmod(fake, 0o755)
        for ci in (None, 'true'):
            self._env(fake, ci)
            self.assertEqual(fake, prometheus.require_prometheus(self))

    def test_missing_skips_outside_ci(self):
        for ci in (None, '', 'false', '0', 'no'):
            self._env(self.not_executable, ci)
            e = self.assertRaises(self.skipException,
                                  prometheus.require_prometheus, self)
            self.assertIn(prometheus.ENV_BINARY, str(e))
            self.assertIn(self.not_executable, str(e))

    def test_missing_fails_in_ci(self):
        for ci in ('true', 'TRUE', 'True', '1', 'yes', 'YES'):
            self._env(self.not_executable, ci)
            e = self.assertRaises(self.failureException,
                                  prometheus.require_prometheus, self)
            self.assertIn(self.not_executable, str(e))
            self.assertIn('CI', str(e))

    def test_missing_from_path_skips(self):
        self._env(None, None)
        self.useFixture(fixtures.EnvironmentVariable('PATH', self.dir))
        e = self.assertRaises(self.skipException,
                              prometheus.require_prometheus, self)
        self.assertIn('not found', str(e))


class TestImport(testtools.TestCase):

    def test_does_not_import_nova(self):
        # The unit tests run without Nova's functional harness.
        code = ('import sys; import tests.harness.prometheus; '
                'print(sorted(m for m in sys.modules '
                'if m == "nova" or m.startswith("nova.")))')
        out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                             check=True, capture_output=True, text=True)
        self.assertEqual('[]', out.stdout.strip())

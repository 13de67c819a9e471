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


"""Nova's live-migration API: submit, abort, and read migration records.

Raw calls through the openstacksdk compute adapter, each at the
microversion whose behaviour we rely on:

* ``POST /servers/{id}/action`` ``os-migrateLive`` at **2.68**: no
  ``force`` (removed in 2.68, so Nova's scheduler and Placement always
  re-validate the host), ``block_migration: auto`` (2.25), and the
  pre-checks run after the 202 (asynchronous since 2.34): a refusal shows
  as a migration record in status ``error``.
* ``DELETE /servers/{id}/migrations/{mid}`` at **2.65**: abort a live
  migration that is ``running`` (2.24) or still ``queued``/``preparing``
  (2.65).
* ``GET /os-migrations`` at **2.59**: ``changes-since`` and the integer
  ``id`` next to ``uuid`` (nova/api/openstack/compute/migrations.py).
"""

import datetime

from openstack import exceptions as sdk_exc

from nova_kronos import history
from nova_kronos import text

LIVE_MIGRATE_MICROVERSION = '2.68'
ABORT_MICROVERSION = '2.65'
LIST_MICROVERSION = '2.59'
#: Characters of a Nova error quoted in a message.
QUOTED_CHARS = 300


class NovaError(Exception):
    """A Nova API call failed; ``refused`` is True for a 4xx answer."""

    def __init__(self, message, refused=False):
        super().__init__(message)
        self.refused = refused


def _fail(what, error):
    if isinstance(error, sdk_exc.HttpException):
        code = error.status_code or 0
        detail = text.one_line(error.details or error.message, QUOTED_CHARS)
        return NovaError('%s: HTTP %s: %s' % (what, code, detail),
                         refused=400 <= code < 500)
    return NovaError('%s: %s' % (what, text.one_line(error, QUOTED_CHARS)))


def _check(response):
    sdk_exc.raise_from_response(response)
    return response


def live_migrate(conn, server_id, host):
    """Ask Nova to live-migrate ``server_id`` to ``host`` (no force).

    :raises NovaError: the API answered an error (``refused`` for 4xx) or
        could not be reached; whether Nova acted on the request anyway
        must then be read back from its records.
    """
    body = {'os-migrateLive': {'host': host, 'block_migration': 'auto'}}
    try:
        _check(conn.compute.post('/servers/%s/action' % server_id,
                                 json=body,
                                 microversion=LIVE_MIGRATE_MICROVERSION))
    except Exception as e:
        raise _fail('live migration of %s to %s' % (server_id, host), e) from e


def abort(conn, server_id, migration_id):
    """Abort an in-progress live migration.

    :raises NovaError: Nova refused (e.g. the migration is already past the
        point of no return) or could not be reached.
    """
    try:
        _check(conn.compute.delete(
            '/servers/%s/migrations/%s' % (server_id, migration_id),
            microversion=ABORT_MICROVERSION))
    except Exception as e:
        raise _fail('abort of migration %s of %s' % (migration_id,
                                                     server_id), e) from e


def _epoch(value):
    if not value:
        return None
    text = str(value).replace('Z', '')
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _record(raw):
    created = _epoch(raw.get('created_at'))
    updated = _epoch(raw.get('updated_at')) or created
    return history.MigrationRecord(
        id=int(raw['id']), server_id=raw.get('instance_uuid'),
        source=raw.get('source_compute'),
        destination=raw.get('dest_compute') or None,
        status=raw.get('status'), created_at=created or 0.0,
        updated_at=updated or 0.0)


def records(conn, server_id=None, changes_since=None):
    """Nova's live-migration records, oldest first.

    :param server_id: only this server's migrations.
    :param changes_since: epoch seconds; only records updated since then.
    :returns: list of :class:`nova_kronos.history.MigrationRecord`.
    :raises NovaError: the API could not be read.
    """
    params = {'migration_type': 'live-migration'}
    if server_id:
        params['instance_uuid'] = server_id
    if changes_since is not None:
        params['changes-since'] = datetime.datetime.fromtimestamp(
            changes_since, datetime.timezone.utc).strftime(
                '%Y-%m-%dT%H:%M:%SZ')
    found, marker = [], None
    try:
        while True:
            page = dict(params, marker=marker) if marker else params
            body = _check(conn.compute.get(
                '/os-migrations', params=page,
                microversion=LIST_MICROVERSION)).json()
            batch = body.get('migrations') or []
            found.extend(_record(m) for m in batch)
            links = body.get('migrations_links') or []
            if not batch or not any(link.get('rel') == 'next'
                                    for link in links):
                break
            marker = batch[-1].get('uuid')
    except NovaError:
        raise
    except Exception as e:
        raise _fail('listing live migrations', e) from e
    return sorted(found, key=lambda r: r.id)


def latest(conn, server_id, after_id=0):
    """The newest record of ``server_id`` with an id above ``after_id``.

    :returns: a :class:`~nova_kronos.history.MigrationRecord` or None.
    :raises NovaError: the API could not be read.
    """
    newer = [r for r in records(conn, server_id=server_id)
             if r.id > after_id]
    return newer[-1] if newer else None

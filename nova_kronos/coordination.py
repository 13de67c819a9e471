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


"""One rebalance per aggregate at a time: tooz locks.

``[kronos_rebalance] lock_url`` names a tooz backend. The default,
``file://<state_dir>/locks``, needs nothing more on one controller (file
locks through ``fasteners``); several controllers share a lock service
instead: ``etcd3+http://etcd:2379``, ``redis://redis:6379`` or
``zookeeper://zk:2181`` (tooz backends of the same names).

Each aggregate has its own lock, named ``nova-kronos-rebalance.<name>``
(a digest replaces names with characters a file name cannot hold). A run
takes the locks of its scope in sorted order (so two runs over
overlapping scopes cannot deadlock), and holds them from reading the
inventory to the end of execution.
"""

import contextlib
import hashlib
import os
import re
import socket
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_SAFE = re.compile(r'^[A-Za-z0-9_.-]{1,100}$')


class CoordinationError(Exception):
    """The lock backend cannot be used (bad URL, unreachable, no dir)."""


class LockTimeout(Exception):
    """Another run holds the lock of an aggregate."""


def lock_name(aggregate):
    """The tooz lock name of one aggregate (bytes)."""
    if not _SAFE.match(aggregate):
        aggregate = 'sha256-' + hashlib.sha256(
            aggregate.encode('utf-8')).hexdigest()
    return ('nova-kronos-rebalance.%s' % aggregate).encode('ascii')


def backend_url(opts):
    """The tooz URL of ``[kronos_rebalance]`` (``lock_url`` or the default).

    :raises CoordinationError: the default directory cannot be created.
    """
    if opts.lock_url:
        return opts.lock_url
    path = os.path.join(opts.state_dir, 'locks')
    try:
        os.makedirs(path, mode=0o750, exist_ok=True)
    except OSError as e:
        raise CoordinationError(
            'cannot create the lock directory %s (%s): set [kronos_rebalance]'
            ' state_dir to a writable directory, or lock_url' % (path, e)
        ) from e
    return 'file://' + path


@contextlib.contextmanager
def aggregate_locks(url, aggregates, timeout, clock=time.monotonic):
    """Hold the locks of ``aggregates`` for the ``with`` block.

    :param url: tooz backend URL.
    :param aggregates: aggregate names.
    :param timeout: seconds to wait for all of them (0: do not wait).
    :raises LockTimeout: a lock was not free within ``timeout``.
    :raises CoordinationError: the backend could not be used.
    """
    from tooz import coordination

    member = ('%s-%d' % (socket.gethostname(), os.getpid())).encode()
    try:
        coordinator = coordination.get_coordinator(url, member)
        coordinator.start(start_heart=True)
    except Exception as e:
        raise CoordinationError('cannot use the lock backend %s: %s'
                                % (_redacted(url), e)) from e
    held = []
    deadline = clock() + max(0.0, timeout)
    try:
        for name in sorted(set(aggregates)):
            lock = coordinator.get_lock(lock_name(name))
            remaining = max(0.0, deadline - clock())
            try:
                got = lock.acquire(blocking=remaining if remaining else False)
            except Exception as e:
                raise CoordinationError('cannot take the lock of aggregate '
                                        '%s at %s: %s'
                                        % (name, _redacted(url), e)) from e
            if not got:
                raise LockTimeout(
                    'another rebalance holds the lock of aggregate %s (%s); '
                    'waited %g s (--lock-timeout)'
                    % (name, _redacted(url), timeout))
            held.append((name, lock))
        LOG.debug('kronos: holding the rebalance locks of %s',
                  ', '.join(n for n, _ in held))
        yield [n for n, _ in held]
    finally:
        for name, lock in reversed(held):
            try:
                lock.release()
            except Exception as e:
                LOG.warning('kronos: releasing the lock of aggregate %s '
                            'failed: %s', name, e)
        try:
            coordinator.stop()
        except Exception as e:
            LOG.debug('kronos: stopping the lock coordinator: %s', e)


def _redacted(url):
    # user:password@ in a backend URL must not reach logs or errors.
    return re.sub(r'//[^/@]*@', '//***@', url)

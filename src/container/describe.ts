import { processArgs } from './config.js';
import { containerInit } from './process.js';
import type { Container } from './record.js';

// `docker container inspect`, for the fields a working container has.

export function inspectContainer(c: Container) {
  const { record, state } = c;
  const args = processArgs(record.config);
  const running = state.status === 'running';
  const pid = running && state.pid !== undefined ? (containerInit(state.pid) ?? 0) : 0;
  return {
    Id: record.id,
    Created: record.created,
    Path: args[0] ?? '',
    Args: args.slice(1),
    State: {
      Status: state.status,
      Running: running,
      Paused: false,
      Pid: pid,
      ExitCode: state.exitCode ?? 0,
      Error: state.error ?? '',
      StartedAt: state.startedAt ?? '0001-01-01T00:00:00Z',
      FinishedAt: state.finishedAt ?? '0001-01-01T00:00:00Z',
    },
    Image: record.imageId,
    Name: `/${record.name}`,
    Config: {
      Hostname: record.id.slice(0, 12),
      Tty: record.host.tty,
      OpenStdin: record.host.interactive,
      Image: record.image,
      ...record.config,
    },
    HostConfig: {
      Binds: record.host.binds.filter((b) => !b.anonymous).map((b) => `${b.source}:${b.destination}${b.readOnly ? ':ro' : ''}`),
      NetworkMode: record.host.network,
      AutoRemove: record.host.autoRemove,
      ReadonlyRootfs: record.host.readOnly,
      Init: record.host.init,
      Runtime: record.host.runtime ?? '',
    },
    Mounts: record.host.binds.map((b) => ({ Type: b.anonymous ? 'volume' : 'bind', Source: b.source, Destination: b.destination, RW: !b.readOnly })),
  };
}

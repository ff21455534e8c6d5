/**
 * What both ways of serving share: the listeners `tsgi serve` opens (as configured, else
 * systemd's sockets, else fd 0, else HTTP on 127.0.0.1:8000), the options a master
 * (master.ts) or a lone process (single.ts) runs with, and the error either throws when it
 * cannot start.
 */
import type { ServeConfig } from './config.js';
import { isListeningSocket, systemdSockets, type ListenAddress } from './listen.js';
import type { Logger } from './log.js';
import type { Ids } from './privileges.js';
import { protocolByFlag, type Protocol } from './protocols.js';

/** A listener to open: a protocol and an address. */
export interface ServeListener {
  protocol: Protocol;
  addr: ListenAddress;
}

/** What a master or a lone process runs with. */
export interface ServeOptions {
  config: ServeConfig;
  listeners: ServeListener[];
  log: Logger;
  /** Privileges to drop to after binding, or null. */
  ids: Ids | null;
}

/** Serving cannot start; the message is for the user (exit status 1). */
export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartError';
  }
}

/** The listeners: as configured, else systemd's sockets, else fd 0, else HTTP on :8000. */
export function chooseListeners(config: ServeConfig): ServeListener[] {
  const systemd = systemdSockets();
  if (config.listeners.length > 0) {
    return config.listeners.map((l) => ({ protocol: protocolByFlag(l.protocol)!, addr: l.addr }));
  }
  const fastcgi = protocolByFlag('fastcgi')!;
  if (systemd.length > 0) {
    return systemd.map((s) => ({
      protocol: protocolByFlag(s.name) ?? fastcgi,
      addr: { type: 'fd', fd: s.fd },
    }));
  }
  if (isListeningSocket(0)) return [{ protocol: fastcgi, addr: { type: 'fd', fd: 0 } }];
  return [
    { protocol: protocolByFlag('http')!, addr: { type: 'tcp', host: '127.0.0.1', port: 8000 } },
  ];
}

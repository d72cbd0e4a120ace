/** A running (or stopped) nats-server with its own store directory. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Stops the server (SIGTERM); the store directory stays for {@link NatsServer.start}. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store. */
  start(): Promise<void>;
  /** Stops it and removes its store. */
  remove(): Promise<void>;
}

/** True when the nats-server binary (`$NATS_SERVER`, else `nats-server` on the PATH) runs. */
export function natsServerAvailable(): boolean;

/** Starts nats-server with JetStream on 127.0.0.1, optionally requiring `token`; throws when it is missing. */
export function startNatsServer(options?: { token?: string }): Promise<NatsServer>;

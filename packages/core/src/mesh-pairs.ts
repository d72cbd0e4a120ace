/**
 * One link per pair of Nexus nodes (docs/mesh.md "One link per pair"). When two Nexus nodes dial each
 * other, each holds an outbound and an inbound link to the same node. Both sides order their two
 * identities the same way — a node's identity is the SHA-256 fingerprint of the certificate it presented
 * on the link plus the epoch it advertised (so nodes sharing one certificate still differ, and a peer can
 * only claim identities under its own certificate) — and the link dialled by the smaller identity is kept.
 * Only the other side acts: it closes its outbound link and does not redial while the kept link is up.
 * Reference peers (no capabilities) are never paired: they keep two links, as they expect.
 */
import type { PeerLink } from './peer-link.js';

/** Close reason of the link given up for the pair's other link. */
export const DUPLICATE_LINK_REASON = 'duplicate_link';

/** What {@link LinkPairs.add} decided: close this node's outbound link, the inbound one carries the pair. */
export interface PairDecision {
  close: PeerLink;
  keep: PeerLink;
}

/** The links to Nexus peers, by the peer's identity. */
export class LinkPairs {
  readonly #epoch: string;
  readonly #byPeer = new Map<string, Set<PeerLink>>();

  /** `epoch`: this node's (the announcer's). */
  constructor(epoch: string) {
    this.#epoch = epoch;
  }

  /**
   * Records a link whose peer advertised `peerEpoch`. Returns the decision when it completes a pair
   * (an inbound and an outbound link to the same node) and this node is the one that gives its link up;
   * `undefined` otherwise (no pair, or the peer gives up its own).
   */
  add(link: PeerLink, peerEpoch: string): PairDecision | undefined {
    if (link.localFingerprint === undefined || link.remoteFingerprint === undefined) return undefined;
    const key = `${link.remoteFingerprint}/${peerEpoch}`;
    let links = this.#byPeer.get(key);
    if (links === undefined) {
      links = new Set();
      this.#byPeer.set(key, links);
    }
    links.add(link);
    link.once('close', () => {
      links.delete(link);
      if (links.size === 0 && this.#byPeer.get(key) === links) this.#byPeer.delete(key);
    });
    let inbound: PeerLink | undefined;
    let outbound: PeerLink | undefined;
    for (const l of links) {
      if (l.closed) continue;
      if (l.direction === 'inbound') inbound ??= l;
      else outbound ??= l;
    }
    if (inbound === undefined || outbound === undefined) return undefined;
    const mine = `${outbound.localFingerprint}/${this.#epoch}`;
    // The smaller identity's dialled link is kept: ours when we are smaller, so the peer closes its own.
    return mine < key ? undefined : { close: outbound, keep: inbound };
  }
}

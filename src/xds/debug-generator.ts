/**
 * Debug types served over ADS, as istiod's StatusGen (pilot/pkg/xds/statusgen.go): a DiscoveryRequest for
 * `istio.io/debug/syncz` gets one ClientConfig per connected proxy with its per-type sync status (what
 * `istioctl proxy-status` asks istiod for). The requester's own stream is not listed (it watches no config type).
 */
import { frameDiscoveryResponse, resourceEntry, type DiscoveryRequest } from '../proto/discovery.js';
import { messageType } from '../proto/encode.js';
import { proxyConnections, type ConnectionView } from '../monitoring/sync-status.js';
import { CLIENT_CONFIG_TYPE, encodeClientConfig, type CsdsSource } from './csds.js';

export const DEBUG_SYNCZ_TYPE = 'istio.io/debug/syncz';

let nonceSeq = 0;

/** Answer a debug type on `con`'s stream; false when the type is not a debug type this server knows. */
export function handleDebugRequest(src: CsdsSource, _con: ConnectionView, req: DiscoveryRequest, write: (b: Buffer) => void): boolean {
  if (req.typeUrl !== DEBUG_SYNCZ_TYPE) return false;
  // An ACK of a syncz response asks for nothing new.
  if (req.responseNonce !== '') return true;
  const anyType = messageType('google.protobuf.Any');
  const entries = proxyConnections([...src.ads.connections] as ConnectionView[]).map((c) => {
    const value = encodeClientConfig(c, false);
    return resourceEntry(anyType.encode(anyType.fromObject({ type_url: CLIENT_CONFIG_TYPE, value })).finish());
  });
  write(frameDiscoveryResponse(new Date().toISOString(), entries, DEBUG_SYNCZ_TYPE, `syncz-${++nonceSeq}`));
  return true;
}

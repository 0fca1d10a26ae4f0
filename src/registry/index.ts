/**
 * registry/: the distribution-spec client and what is made of it.
 *   pull(store, ref, opts) → LoadedImage       pull into the store, tagged under the full name
 *   push(store, image, dest?, opts) → {digest}  push an image (of the store, or any Image)
 *   openRemoteImage(ref, opts) → Image          a remote image, its layers fetched when read
 *   new RegistryClient(opts)                    manifests and blobs, auth, TLS, retries
 *   login/logout helpers: checkLogin, storeCredentials, eraseCredentials
 */
export { RegistryClient, MANIFEST_ACCEPT, type ClientOptions } from './client.js';
export { pull, resolveManifest, eachLimited, type PullOptions, type TransferEvent } from './pull.js';
export { push, type PushOptions } from './push.js';
export { openRemoteImage, type RemoteImageOptions } from './image.js';
export {
  getCredentials,
  storeCredentials,
  eraseCredentials,
  dockerConfigDir,
  configKey,
  type Credentials,
} from './credentials.js';
export { parseChallenge, type Challenge } from './auth.js';
export { checkLogin, loginServer } from './login.js';
export { closeIdleConnections, drain, httpRequest, readBody } from './http.js';

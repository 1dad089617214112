// A real OpenID Provider / OAuth 2.1 authorization server for tests, built on the certified
// `oidc-provider` package. It runs the genuine protocol (discovery, JWKS, DCR, authorization code
// + PKCE, refresh, client credentials, RFC 8707 resource indicators); the only test shortcut is
// that the login and consent pages decide by themselves, so no browser or human is needed.
//
//   node idp.mjs [--port N] [--config FILE]      (or IDP_PORT, IDP_CONFIG=FILE or inline JSON)
//
// Port 0 picks a free port. Once ready, exactly one line `idp listening on http://127.0.0.1:PORT`
// goes to stdout (that URL is the issuer); the library's own notices go to stderr.
//
// Config (every key optional):
//   {
//     "accounts": ["alice", "bob"],     // who may log in (the `sub` of their tokens)
//     "defaultAccount": "alice",        // who logs in when the request has no login_hint
//     "scopes": ["tasks:read", "tasks:write"],
//     "resources": {                    // RFC 8707 resource indicator -> resource server; "*" = any
//       "http://127.0.0.1:9999/mcp": {"scopes": ["tasks:read"], "accessTokenTTL": 60, "alg": "ES256"},
//       "http://127.0.0.1:9998/mcp": {"format": "opaque"}   // opaque tokens, checked by introspection
//     },
//     "accessTokenTTL": 3600,           // default lifetime of access tokens, seconds
//     "clients": [ <RFC 7591 client metadata>, optionally with "accessTokenTTL" and "tokenClaims" ],
//     "registration": true,             // dynamic client registration (RFC 7591)
//     "defaultResource": "http://...",  // used when a request names no resource
//     "accessTokenAlg": "RS256", "signingAlgs": ["RS256", "ES256"]
//   }
// "tokenClaims" (test-only) overrides claims of the access tokens minted for that client, which the
// provider still signs with its own keys: e.g. {"iss": "https://elsewhere.example"} for a token that
// names another issuer, or {"expiredSecondsAgo": 600} for one that expired ten minutes ago. These are
// the refusal cases a resource server must get right, minted by the real provider.
// A token request without any resource (and no defaultResource) gets what oidc-provider gives
// then: an opaque token with no audience, which no resource server here will accept.
//
// Test-only endpoint: POST /__test/rotate[?keep_old=false] makes a new signing key per algorithm
// (new kid) the one that signs; the previous keys stay in the JWKS unless keep_old=false.
// Answers {"signing": {alg: kid}, "jwks_kids": [...]}.

import { generateKeyPair, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs, promisify } from 'node:util';

import { Provider, errors } from 'oidc-provider';

const ALGS = { RS256: ['rsa', { modulusLength: 2048 }], ES256: ['ec', { namedCurve: 'P-256' }] };
const OIDC_SCOPES = ['openid', 'offline_access'];

function loadConfig() {
  const { values } = parseArgs({ options: { port: { type: 'string' }, config: { type: 'string' } } });
  const source = values.config ?? process.env.IDP_CONFIG;
  const config = source ? JSON.parse(source.trimStart().startsWith('{') ? source : readFileSync(source, 'utf8')) : {};
  config.accounts ??= ['alice'];
  config.defaultAccount ??= config.accounts[0];
  const port = Number(values.port ?? process.env.IDP_PORT ?? config.port ?? 0);
  return { config, port };
}

async function newSigningKey(alg, round) {
  const [type, options] = ALGS[alg];
  const { privateKey } = await promisify(generateKeyPair)(type, options);
  // The random part keeps a kid from repeating across IdP restarts, so a resource server's cached
  // JWKS can never wrongly match a key from a previous run.
  const kid = `${alg.toLowerCase()}-${round}-${randomBytes(4).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// The provider's storage, shared by every Provider this process builds. Key rotation builds a new
// Provider, and the library's own in-memory adapter keeps a separate store per instance, which
// would forget DCR clients, sessions, grants and refresh tokens at each rotation.
const store = new Map(); // `${model}:${id}` -> { payload, expiresAt }
class SharedMemoryAdapter {
  constructor(model) { this.model = model; }

  #live(key) {
    const entry = store.get(key);
    if (entry?.expiresAt > Date.now()) return entry.payload;
    store.delete(key);
    return undefined;
  }

  #findBy(property, value) {
    for (const [key, { payload }] of store) {
      if (key.startsWith(`${this.model}:`) && payload[property] === value) return this.#live(key);
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    store.set(`${this.model}:${id}`, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  }

  async find(id) { return this.#live(`${this.model}:${id}`); }

  async findByUid(uid) { return this.#findBy('uid', uid); }

  async findByUserCode(userCode) { return this.#findBy('userCode', userCode); }

  async consume(id) {
    const payload = this.#live(`${this.model}:${id}`);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(`${this.model}:${id}`); }

  async revokeByGrantId(grantId) {
    for (const [key, { payload }] of store) if (payload.grantId === grantId) store.delete(key);
  }
}

function accountFinder(accounts) {
  return async (_ctx, sub) => (accounts.includes(sub) ? { accountId: sub, claims: async () => ({ sub }) } : undefined);
}

function buildProvider(issuer, config, keys, cookieKeys) {
  const resources = config.resources ?? { '*': {} };
  const resourceScopes = [...new Set([
    ...config.scopes ?? [], ...Object.values(resources).flatMap((server) => server.scopes ?? []),
  ])];
  // oidc-provider only knows RFC 7591 metadata; the per-client TTL is ours, so it is kept aside.
  const clientTTL = new Map();
  const clientClaims = new Map();
  const clients = (config.clients ?? []).map(({ accessTokenTTL, tokenClaims, ...metadata }) => {
    if (accessTokenTTL !== undefined) clientTTL.set(metadata.client_id, accessTokenTTL);
    if (tokenClaims !== undefined) clientClaims.set(metadata.client_id, tokenClaims);
    return metadata;
  });
  const signingKid = Object.fromEntries(keys.map((key) => [key.alg, key.kid]).reverse());

  // Most specific wins, so a test can give one client or one resource a 1 s lifetime for an
  // expired-token case while the rest of the suite keeps normal tokens.
  const accessTokenTTL = (_ctx, token, client) => clientTTL.get(client?.clientId)
    ?? token.resourceServer?.accessTokenTTL ?? config.accessTokenTTL ?? 3600;

  return new Provider(issuer, {
    adapter: SharedMemoryAdapter,
    clients,
    jwks: { keys },
    cookies: { keys: cookieKeys },
    findAccount: accountFinder(config.accounts),
    // Resource scopes must be listed here too: DCR refuses a client whose `scope` metadata names a
    // scope the server does not advertise, and the MCP SDK registers with the scopes it will ask for.
    scopes: [...OIDC_SCOPES, ...resourceScopes],
    // OAuth 2.1: PKCE for every client, confidential ones included (the library default only
    // forces it on public clients).
    pkce: { required: () => true },
    // OAuth 2.1 has no implicit grant: the default also offers `id_token` and `code id_token`.
    responseTypes: ['code', 'none'],
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // The documented hook that shapes a JWT access token's payload just before the provider signs it.
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          const { expiredSecondsAgo, ...claims } = clientClaims.get(token.clientId) ?? {};
          Object.assign(jwt.payload, claims);
          if (expiredSecondsAgo !== undefined) {
            jwt.payload.exp = Math.floor(Date.now() / 1000) - expiredSecondsAgo;
            jwt.payload.iat = jwt.payload.exp - 300;
          }
        },
      },
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // RFC 7662 and RFC 7009: a resource server asks about opaque tokens; a client revokes its own.
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: config.registration ?? true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? config.defaultResource,
        // A token request without `resource` still gets the JWT for the resource that was
        // granted, rather than an opaque UserInfo-only token when `openid` was in scope.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const server = resources[indicator] ?? resources['*'];
          if (!server) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          const alg = server.alg ?? config.accessTokenAlg ?? 'RS256';
          const info = {
            scope: (server.scopes ?? resourceScopes).join(' '),
            audience: server.audience ?? indicator,
            accessTokenTTL: server.accessTokenTTL,
            accessTokenFormat: server.format ?? 'jwt',
          };
          return info.accessTokenFormat === 'jwt' ? { ...info, jwt: { sign: { alg, kid: signingKid[alg] } } } : info;
        },
      },
    },
    ttl: {
      AccessToken: accessTokenTTL,
      ClientCredentials: accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
  });
}

// Stands in for the login and consent pages: logs in the login_hint account (or the default
// one) and consents to exactly what the authorization request asked for, then hands control
// back to the provider, which redirects to the client with the code as usual.
async function finishInteraction(provider, config, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const accountId = params.login_hint ?? config.defaultAccount;
    // An unknown login_hint is refused like a failed login, so a test can drive a denial.
    const result = config.accounts.includes(accountId)
      ? { login: { accountId } }
      : { error: 'access_denied', error_description: `no test account ${accountId}` };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function main() {
  // stdout carries only the ready line, so a test can read it without draining the pipe later;
  // oidc-provider prints its notices with console.info.
  console.info = console.warn;
  console.log = console.warn;
  const { config, port } = loadConfig();
  const algs = config.signingAlgs ?? Object.keys(ALGS);
  // The first key of an algorithm is the one that signs (see getResourceServerInfo's kid), so the
  // JWKS always lists the active keys first and retired ones after them.
  let round = 1;
  let keys = await Promise.all(algs.map((alg) => newSigningKey(alg, round)));
  const cookieKeys = [randomBytes(32).toString('base64url')];
  let issuer;
  let provider;
  let handle;

  // The key set is fixed when a Provider is built, so rotation builds a new one on the same
  // issuer. Nothing else changes: the store is shared (SharedMemoryAdapter) and the cookie keys
  // are kept, so sessions, DCR clients, grants and refresh tokens carry over.
  const install = () => {
    provider = buildProvider(issuer, config, keys, cookieKeys);
    handle = provider.callback();
  };

  async function rotate(keepOld) {
    round += 1;
    const fresh = await Promise.all(algs.map((alg) => newSigningKey(alg, round)));
    keys = keepOld ? [...fresh, ...keys] : fresh;
    install();
    return { signing: Object.fromEntries(fresh.map((k) => [k.alg, k.kid])), jwks_kids: keys.map((k) => k.kid) };
  }

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, issuer);
      if (url.pathname.startsWith('/interaction/')) {
        return await finishInteraction(provider, config, req, res);
      }
      if (url.pathname === '/__test/rotate' && req.method === 'POST') {
        const body = JSON.stringify(await rotate(url.searchParams.get('keep_old') !== 'false'));
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return undefined;
      }
      return handle(req, res);
    } catch (err) {
      // e.g. an interaction URL opened without its cookie: oidc-provider's errors carry a status.
      const status = err.statusCode ?? 500;
      if (status === 500) console.error(err);
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(String(err.message ?? err));
      return undefined;
    }
  });

  // Bound to loopback only, which is also what keeps /__test/rotate out of reach of anyone else.
  await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
  issuer = `http://127.0.0.1:${server.address().port}`;
  install();
  process.stdout.write(`idp listening on ${issuer}\n`);
}

await main();

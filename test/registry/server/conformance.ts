import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { indexOf, pushBlob, pushImage, randomImage, sha256, uniqueRepo, type Client, type Res } from './support.js';

// Checks of the OCI distribution-spec v1.1, one per requirement, named "<section>: <behaviour>"
// after the spec's sections (Pull, Push, Content Discovery, Content Management, API). They need
// only a registry URL (and credentials when it uses token auth), so they run against kiln and
// against any other registry — conformance.test.ts runs them against Debian's docker-registry too.

export interface Check {
  name: string;
  run(c: Client, prefix: string): Promise<void>;
}

const SpecCodes = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);

/** API "Error Codes": a JSON error body has errors[] whose codes come from the spec's table. */
export function assertSpecError(r: Res, status: number | number[], code?: string): void {
  const statuses = Array.isArray(status) ? status : [status];
  assert.ok(statuses.includes(r.status), `status ${r.status}, expected ${statuses.join(' or ')}: ${r.text().slice(0, 300)}`);
  // "A 4XX response code from the registry MAY return a body in any format"; a JSON one has the spec's form.
  if (r.body.length === 0 || !(r.headers.get('content-type') ?? '').includes('json')) {
    assert.equal(code, undefined, `expected a JSON error body with ${code}`);
    return;
  }
  const doc = r.json<{ errors: { code: string; message?: string }[] }>();
  assert.ok(Array.isArray(doc.errors) && doc.errors.length > 0, 'errors[] present');
  for (const e of doc.errors) assert.ok(SpecCodes.has(e.code), `code ${e.code} is one of the spec's`);
  if (code) assert.ok(doc.errors.some((e) => e.code === code), `code ${code} in ${JSON.stringify(doc.errors)}`);
}

const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
const ociIndex = 'application/vnd.oci.image.index.v1+json';
const allManifestTypes = [ociManifest, ociIndex, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

async function pushed(c: Client, prefix: string, tag = 'latest', opts: Parameters<typeof randomImage>[0] = {}) {
  const repo = uniqueRepo(prefix);
  const img = randomImage(opts);
  const r = await pushImage(c, repo, tag, img);
  assert.equal(r.status, 201, `push: ${r.text()}`);
  return { repo, img };
}

async function startUpload(c: Client, repo: string): Promise<string> {
  const r = await c.req('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': '0' } });
  assert.equal(r.status, 202);
  const loc = r.headers.get('location');
  assert.ok(loc, 'Location header');
  return new URL(loc, c.url).pathname + new URL(loc, c.url).search;
}

const withDigest = (loc: string, digest: string) => loc + (loc.includes('?') ? '&' : '?') + 'digest=' + encodeURIComponent(digest);
const pathOf = (c: Client, loc: string) => {
  const u = new URL(loc, c.url);
  return u.pathname + u.search;
};

export const checks: Check[] = [
  {
    name: 'API Determining Support: GET /v2/ answers 200',
    async run(c) {
      const r = await c.req('GET', '/v2/');
      assert.equal(r.status, 200);
    },
  },
  {
    name: 'Pull: pulling manifests by tag gives the pushed bytes, Content-Type and Docker-Content-Digest',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const r = await c.req('GET', `/v2/${repo}/manifests/latest`, { headers: { accept: allManifestTypes } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, img.manifest);
      assert.equal(r.headers.get('content-type'), ociManifest);
      assert.equal(r.headers.get('docker-content-digest'), img.digest);
    },
  },
  {
    name: 'Pull: pulling manifests by digest gives the pushed bytes',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const r = await c.req('GET', `/v2/${repo}/manifests/${img.digest}`, { headers: { accept: allManifestTypes } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, img.manifest);
    },
  },
  {
    name: 'Pull: a manifest not in the repository is 404 MANIFEST_UNKNOWN, by tag and by digest',
    async run(c, prefix) {
      const { repo } = await pushed(c, prefix);
      assertSpecError(await c.req('GET', `/v2/${repo}/manifests/missing`, { headers: { accept: allManifestTypes } }), 404, 'MANIFEST_UNKNOWN');
      assertSpecError(await c.req('GET', `/v2/${repo}/manifests/${sha256(randomBytes(8))}`, { headers: { accept: allManifestTypes } }), 404, 'MANIFEST_UNKNOWN');
    },
  },
  {
    name: 'Pull: pulling blobs gives the bytes and Docker-Content-Digest',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const r = await c.req('GET', `/v2/${repo}/blobs/${sha256(img.layers[0]!)}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, img.layers[0]);
      assert.equal(r.headers.get('docker-content-digest'), sha256(img.layers[0]!));
    },
  },
  {
    name: 'Pull: a blob not in the repository is 404 BLOB_UNKNOWN',
    async run(c, prefix) {
      const { repo } = await pushed(c, prefix);
      assertSpecError(await c.req('GET', `/v2/${repo}/blobs/${sha256(randomBytes(8))}`), 404, 'BLOB_UNKNOWN');
    },
  },
  {
    name: 'Pull: Range requests on blobs (RFC 9110 section 14) give 206 with Content-Range, 416 when unsatisfiable',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const data = randomBytes(2048);
      const d = await pushBlob(c, repo, data);
      const cases: [string, number, number][] = [
        ['bytes=500-1499', 500, 1499],
        ['bytes=500-', 500, 2047],
        ['bytes=-500', 1548, 2047],
        ['bytes=2000-5000', 2000, 2047],
      ];
      for (const [range, s, e] of cases) {
        const r = await c.req('GET', `/v2/${repo}/blobs/${d}`, { headers: { range } });
        assert.equal(r.status, 206, range);
        assert.deepEqual(r.body, data.subarray(s, e + 1), range);
        assert.equal(r.headers.get('content-range'), `bytes ${s}-${e}/2048`, range);
      }
      for (const range of ['bytes=500-0', 'bytes=5000-10000']) assert.equal((await c.req('GET', `/v2/${repo}/blobs/${d}`, { headers: { range } })).status, 416, range);
    },
  },
  {
    name: 'Pull: checking if content exists with HEAD gives Content-Length and Docker-Content-Digest',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const m = await c.req('HEAD', `/v2/${repo}/manifests/latest`, { headers: { accept: allManifestTypes } });
      assert.equal(m.status, 200);
      assert.equal(m.headers.get('content-length'), String(img.manifest.length));
      assert.equal(m.headers.get('docker-content-digest'), img.digest);
      const b = await c.req('HEAD', `/v2/${repo}/blobs/${sha256(img.config)}`);
      assert.equal(b.status, 200);
      assert.equal(b.headers.get('content-length'), String(img.config.length));
      assert.equal((await c.req('HEAD', `/v2/${repo}/blobs/${sha256(randomBytes(4))}`)).status, 404);
      assert.equal((await c.req('HEAD', `/v2/${repo}/manifests/nope`)).status, 404);
    },
  },
  {
    name: 'Pull: content negotiation — a tag whose manifest type the Accept header does not list is not served',
    async run(c, prefix) {
      const { repo } = await pushed(c, prefix);
      const r = await c.req('GET', `/v2/${repo}/manifests/latest`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
      assert.equal(r.status, 404);
    },
  },
  {
    name: 'Push: POST then PUT pushes a blob monolithically (202 with Location, then 201 with Location)',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const data = randomBytes(3000);
      const loc = await startUpload(c, repo);
      const r = await c.req('PUT', withDigest(loc, sha256(data)), { body: data, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r.status, 201);
      assert.ok(r.headers.get('location'));
      const g = await c.req('GET', pathOf(c, r.headers.get('location')!));
      assert.deepEqual(g.body, data);
    },
  },
  {
    name: 'Push: a single POST with ?digest= pushes a blob (201, or 202 to continue with PUT)',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const data = randomBytes(1000);
      const r = await c.req('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { body: data, headers: { 'content-type': 'application/octet-stream' } });
      assert.ok(r.status === 201 || r.status === 202, `status ${r.status}`);
      if (r.status === 202) {
        const p = await c.req('PUT', withDigest(pathOf(c, r.headers.get('location')!), sha256(data)), { body: data });
        assert.equal(p.status, 201);
      }
      assert.deepEqual((await c.req('GET', `/v2/${repo}/blobs/${sha256(data)}`)).body, data);
    },
  },
  {
    name: 'Push: pushing a blob in chunks with PATCH and Content-Range, Range 0-<end> after each chunk, PUT closes',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const data = randomBytes(10_000);
      let loc = await startUpload(c, repo);
      for (const [s, e] of [
        [0, 3999],
        [4000, 7999],
      ] as const) {
        const r = await c.req('PATCH', loc, { body: data.subarray(s, e + 1), headers: { 'content-type': 'application/octet-stream', 'content-range': `${s}-${e}` } });
        assert.equal(r.status, 202);
        assert.equal(r.headers.get('range'), `0-${e}`);
        loc = pathOf(c, r.headers.get('location')!);
      }
      const st = await c.req('GET', loc);
      assert.equal(st.status, 204);
      assert.equal(st.headers.get('range'), '0-7999');
      const fin = await c.req('PUT', withDigest(loc, sha256(data)), { body: data.subarray(8000), headers: { 'content-type': 'application/octet-stream', 'content-range': '8000-9999' } });
      assert.equal(fin.status, 201);
      assert.deepEqual((await c.req('GET', `/v2/${repo}/blobs/${sha256(data)}`)).body, data);
    },
  },
  {
    name: 'Push: a chunk uploaded out of order is 416',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const loc = await startUpload(c, repo);
      const first = await c.req('PATCH', loc, { body: randomBytes(100), headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99' } });
      assert.equal(first.status, 202);
      const loc2 = pathOf(c, first.headers.get('location')!);
      const r = await c.req('PATCH', loc2, { body: randomBytes(100), headers: { 'content-type': 'application/octet-stream', 'content-range': '200-299' } });
      assert.equal(r.status, 416);
      const st = await c.req('GET', loc2);
      assert.equal(st.status, 204);
      assert.equal(st.headers.get('range'), '0-99');
    },
  },
  {
    name: 'Push: cancel a blob upload with DELETE (204), after which the session is 404 BLOB_UPLOAD_UNKNOWN',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const loc = await startUpload(c, repo);
      assert.equal((await c.req('DELETE', loc)).status, 204);
      assertSpecError(await c.req('GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    },
  },
  {
    name: 'Push: closing an upload with the wrong digest is 400 DIGEST_INVALID and the blob does not appear',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const data = randomBytes(500);
      const wrong = sha256(randomBytes(500));
      const loc = await startUpload(c, repo);
      assertSpecError(await c.req('PUT', withDigest(loc, wrong), { body: data, headers: { 'content-type': 'application/octet-stream' } }), 400, 'DIGEST_INVALID');
      assert.equal((await c.req('HEAD', `/v2/${repo}/blobs/${wrong}`)).status, 404);
      assert.equal((await c.req('HEAD', `/v2/${repo}/blobs/${sha256(data)}`)).status, 404);
    },
  },
  {
    name: 'Push: mounting a blob from another repository is 201 with Location',
    async run(c, prefix) {
      const from = uniqueRepo(prefix);
      const to = uniqueRepo(prefix);
      const d = await pushBlob(c, from, randomBytes(700));
      const r = await c.req('POST', `/v2/${to}/blobs/uploads/?mount=${d}&from=${from}`);
      assert.equal(r.status, 201);
      assert.ok(r.headers.get('location'));
      assert.equal((await c.req('HEAD', `/v2/${to}/blobs/${d}`)).status, 200);
    },
  },
  {
    name: 'Push: mounting a blob the source does not have starts an upload session instead (202)',
    async run(c, prefix) {
      const from = uniqueRepo(prefix);
      await pushBlob(c, from, randomBytes(10));
      const r = await c.req('POST', `/v2/${uniqueRepo(prefix)}/blobs/uploads/?mount=${sha256(randomBytes(9))}&from=${from}`);
      assert.equal(r.status, 202);
      assert.ok(r.headers.get('location'));
    },
  },
  {
    name: 'Push: mounting without from when the registry knows the blob is 201 (the registry MAY do this)',
    async run(c, prefix) {
      const from = uniqueRepo(prefix);
      const to = uniqueRepo(prefix);
      const d = await pushBlob(c, from, randomBytes(300));
      const r = await c.req('POST', `/v2/${to}/blobs/uploads/?mount=${d}`);
      assert.equal(r.status, 201);
    },
  },
  {
    name: 'Push: pushing manifests answers 201 with Location and Docker-Content-Digest',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      const r = await pushImage(c, repo, 'v1', img);
      assert.equal(r.status, 201);
      assert.ok(r.headers.get('location'));
      assert.equal(r.headers.get('docker-content-digest'), img.digest);
    },
  },
  {
    name: 'Push: pushing a manifest by digest, and Docker schema 2 manifests',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage({ docker: true });
      const r = await pushImage(c, repo, img.digest, img);
      assert.equal(r.status, 201);
      const g = await c.req('GET', `/v2/${repo}/manifests/${img.digest}`, { headers: { accept: allManifestTypes } });
      assert.equal(g.headers.get('content-type'), img.mediaType);
    },
  },
  {
    name: 'Push: an image index whose children are present is accepted and served with its media type',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const a = randomImage();
      const b = randomImage();
      assert.equal((await pushImage(c, repo, a.digest, a)).status, 201);
      assert.equal((await pushImage(c, repo, b.digest, b)).status, 201);
      const idx = indexOf([a, b]);
      assert.equal((await c.req('PUT', `/v2/${repo}/manifests/multi`, { body: idx.body, headers: { 'content-type': idx.mediaType } })).status, 201);
      const g = await c.req('GET', `/v2/${repo}/manifests/multi`, { headers: { accept: allManifestTypes } });
      assert.equal(g.headers.get('content-type'), ociIndex);
      assert.deepEqual(g.body, idx.body);
    },
  },
  {
    name: 'Push: a manifest referencing a blob the repository does not have is 400 MANIFEST_BLOB_UNKNOWN',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      await pushBlob(c, repo, img.config);
      const r = await c.req('PUT', `/v2/${repo}/manifests/latest`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
      assertSpecError(r, 400, 'MANIFEST_BLOB_UNKNOWN');
    },
  },
  {
    name: 'Push: an index referencing a manifest the repository does not have is 400 MANIFEST_BLOB_UNKNOWN',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const a = randomImage();
      assert.equal((await pushImage(c, repo, 'a', a)).status, 201);
      const idx = indexOf([a, randomImage()]);
      assertSpecError(await c.req('PUT', `/v2/${repo}/manifests/multi`, { body: idx.body, headers: { 'content-type': idx.mediaType } }), 400, 'MANIFEST_BLOB_UNKNOWN');
    },
  },
  {
    name: 'Push: malformed manifest JSON is 400 MANIFEST_INVALID',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      await pushBlob(c, repo, randomBytes(5));
      assertSpecError(await c.req('PUT', `/v2/${repo}/manifests/latest`, { body: '{"schemaVersion": 2, "config": ', headers: { 'content-type': ociManifest } }), 400, 'MANIFEST_INVALID');
    },
  },
  {
    name: 'Push: a manifest pushed to a digest that does not match its content is 400 DIGEST_INVALID',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      for (const b of [img.config, ...img.layers]) await pushBlob(c, repo, b);
      assertSpecError(await c.req('PUT', `/v2/${repo}/manifests/${sha256('other')}`, { body: img.manifest, headers: { 'content-type': img.mediaType } }), 400, 'DIGEST_INVALID');
    },
  },
  {
    name: 'Push: a manifest larger than the limit (4 MiB) is 413',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      for (const b of [img.config, ...img.layers]) await pushBlob(c, repo, b);
      const m = JSON.parse(img.manifest.toString());
      m.annotations = { pad: 'x'.repeat(4 * 1024 * 1024 + 10) };
      const r = await c.req('PUT', `/v2/${repo}/manifests/big`, { body: JSON.stringify(m), headers: { 'content-type': ociManifest } });
      assert.equal(r.status, 413);
    },
  },
  {
    name: 'Push: pushing manifests with subject answers OCI-Subject, even when the subject is missing',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const subject = { mediaType: ociManifest, digest: sha256(randomBytes(10)), size: 123 };
      const img = randomImage({ subject, artifactType: 'application/vnd.example.sbom' });
      const r = await pushImage(c, repo, img.digest, img);
      assert.equal(r.status, 201);
      assert.equal(r.headers.get('oci-subject'), subject.digest);
    },
  },
  {
    name: 'Push: pushing a manifest by digest with ?tag= creates the tags and answers OCI-Tag',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      for (const b of [img.config, ...img.layers]) await pushBlob(c, repo, b);
      const r = await c.req('PUT', `/v2/${repo}/manifests/${img.digest}?tag=1.0&tag=latest`, { body: img.manifest, headers: { 'content-type': img.mediaType } });
      assert.equal(r.status, 201);
      assert.match(r.headers.get('oci-tag') ?? '', /1\.0/);
      assert.equal((await c.req('GET', `/v2/${repo}/manifests/1.0`, { headers: { accept: allManifestTypes } })).status, 200);
    },
  },
  {
    name: 'Push: an invalid repository name is 400 NAME_INVALID',
    async run(c) {
      assertSpecError(await c.req('POST', `/v2/Bad_Name/blobs/uploads/`), [400, 404], undefined);
      const r = await c.req('GET', `/v2/a/..b/manifests/latest`);
      assert.ok([400, 404].includes(r.status), `status ${r.status}`);
    },
  },
  {
    name: 'Content Discovery: listing tags gives them in lexical order',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      for (const t of ['b', 'a', 'C', 'latest']) assert.equal((await pushImage(c, repo, t, img)).status, 201);
      const r = await c.req('GET', `/v2/${repo}/tags/list`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { name: repo, tags: ['C', 'a', 'b', 'latest'] });
    },
  },
  {
    name: 'Content Discovery: listing tags with n and last pages through them, with a Link header to the next page',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      for (const t of ['t1', 't2', 't3', 't4', 't5']) assert.equal((await pushImage(c, repo, t, img)).status, 201);
      const p1 = await c.req('GET', `/v2/${repo}/tags/list?n=2`);
      assert.deepEqual(p1.json().tags, ['t1', 't2']);
      assert.match(p1.headers.get('link') ?? '', /rel="next"/);
      const p2 = await c.req('GET', `/v2/${repo}/tags/list?n=2&last=t2`);
      assert.deepEqual(p2.json().tags, ['t3', 't4']);
      const p3 = await c.req('GET', `/v2/${repo}/tags/list?n=2&last=t4`);
      assert.deepEqual(p3.json().tags, ['t5']);
      assert.equal(p3.headers.get('link'), null);
      const z = await c.req('GET', `/v2/${repo}/tags/list?n=0`);
      assert.deepEqual(z.json().tags ?? [], []);
      assert.equal(z.headers.get('link'), null);
    },
  },
  {
    name: 'Content Discovery: listing tags of an unknown repository is 404 NAME_UNKNOWN',
    async run(c, prefix) {
      assertSpecError(await c.req('GET', `/v2/${uniqueRepo(prefix)}/tags/list`), 404, 'NAME_UNKNOWN');
    },
  },
  {
    name: 'Content Discovery: listing referrers gives an image index of manifests with that subject, artifactType and annotations',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const subject = { mediaType: img.mediaType, digest: img.digest, size: img.manifest.length };
      const sbom = randomImage({ subject, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example': 'yes' }, layers: 1 });
      const sig = randomImage({ subject, layers: 1 });
      assert.equal((await pushImage(c, repo, sbom.digest, sbom)).status, 201);
      assert.equal((await pushImage(c, repo, sig.digest, sig)).status, 201);
      const r = await c.req('GET', `/v2/${repo}/referrers/${img.digest}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), ociIndex);
      const idx = r.json<{ manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] }>();
      const byDigest = new Map(idx.manifests.map((m) => [m.digest, m]));
      assert.equal(byDigest.get(sbom.digest)?.artifactType, 'application/vnd.example.sbom');
      assert.deepEqual(byDigest.get(sbom.digest)?.annotations, { 'org.example': 'yes' });
      // Without artifactType in an image manifest, the config media type stands in.
      assert.equal(byDigest.get(sig.digest)?.artifactType, 'application/vnd.oci.image.config.v1+json');
    },
  },
  {
    name: 'Content Discovery: referrers filtered by artifactType answer OCI-Filters-Applied',
    async run(c, prefix) {
      const { repo, img } = await pushed(c, prefix);
      const subject = { mediaType: img.mediaType, digest: img.digest, size: img.manifest.length };
      const a = randomImage({ subject, artifactType: 'application/vnd.example.a', layers: 1 });
      const b = randomImage({ subject, artifactType: 'application/vnd.example.b', layers: 1 });
      await pushImage(c, repo, a.digest, a);
      await pushImage(c, repo, b.digest, b);
      const r = await c.req('GET', `/v2/${repo}/referrers/${img.digest}?artifactType=application/vnd.example.a`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('oci-filters-applied'), 'artifactType');
      assert.deepEqual(
        r.json().manifests.map((m: { digest: string }) => m.digest),
        [a.digest],
      );
    },
  },
  {
    name: 'Content Discovery: referrers of a digest nothing refers to is an empty index (200, never 404)',
    async run(c, prefix) {
      const { repo } = await pushed(c, prefix);
      const r = await c.req('GET', `/v2/${repo}/referrers/${sha256(randomBytes(3))}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json().manifests, []);
    },
  },
  {
    name: 'Content Discovery: referrers with an invalid digest is 400',
    async run(c, prefix) {
      const { repo } = await pushed(c, prefix);
      assert.equal((await c.req('GET', `/v2/${repo}/referrers/sha256:nothex`)).status, 400);
    },
  },
  {
    name: 'Content Management: deleting a tag (202) leaves other tags of the same manifest',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      await pushImage(c, repo, 'one', img);
      await pushImage(c, repo, 'two', img);
      assert.equal((await c.req('DELETE', `/v2/${repo}/manifests/one`)).status, 202);
      assert.equal((await c.req('GET', `/v2/${repo}/manifests/one`, { headers: { accept: allManifestTypes } })).status, 404);
      assert.equal((await c.req('GET', `/v2/${repo}/manifests/two`, { headers: { accept: allManifestTypes } })).status, 200);
      assert.equal((await c.req('GET', `/v2/${repo}/manifests/${img.digest}`, { headers: { accept: allManifestTypes } })).status, 200);
    },
  },
  {
    name: 'Content Management: deleting a manifest by digest (202) removes it and every tag pointing at it',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const img = randomImage();
      await pushImage(c, repo, 'one', img);
      await pushImage(c, repo, 'two', img);
      assert.equal((await c.req('DELETE', `/v2/${repo}/manifests/${img.digest}`)).status, 202);
      for (const ref of [img.digest, 'one', 'two']) assert.equal((await c.req('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept: allManifestTypes } })).status, 404, ref);
      assertSpecError(await c.req('DELETE', `/v2/${repo}/manifests/${img.digest}`), 404, 'MANIFEST_UNKNOWN');
    },
  },
  {
    name: 'Content Management: deleting blobs (202), then 404; an unknown blob is 404 BLOB_UNKNOWN',
    async run(c, prefix) {
      const repo = uniqueRepo(prefix);
      const d = await pushBlob(c, repo, randomBytes(100));
      assert.equal((await c.req('DELETE', `/v2/${repo}/blobs/${d}`)).status, 202);
      assert.equal((await c.req('HEAD', `/v2/${repo}/blobs/${d}`)).status, 404);
      assertSpecError(await c.req('DELETE', `/v2/${repo}/blobs/${sha256(randomBytes(5))}`), 404, 'BLOB_UNKNOWN');
    },
  },
];

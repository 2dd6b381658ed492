import { api, qs, type ImageView } from '../api.js';
import { imageHref, repoHref } from '../router.js';
import { shortDigest } from '../format.js';
import { CopyButton, ErrorNote, KeyValues, Link, Loading, Size, Time, useLoad } from '../ui.js';
import { platformText } from './repository.js';
import { LayerFiles } from './layer-files.js';
import { Lineage } from './lineage.js';
import { Referrers } from './referrers.js';
import { Signatures } from './signatures.js';

const words = (v: string[] | undefined) => (v && v.length ? JSON.stringify(v) : '–');

/** One manifest: an image's config, history, layers and referrers, or an index's platforms. */
export function Image({ name, reference }: { name: string; reference: string }) {
  const { data, error } = useLoad(() => api<ImageView>('GET', `/kiln/v1/image${qs({ repository: name, reference })}`), [name, reference]);
  if (error) return <ErrorNote error={error} back={{ href: repoHref(name), text: `Back to ${name}` }} />;
  // Until the answer for this address arrives, not the previous image's (a link from one image to another).
  if (!data || data.repository !== name || data.reference !== reference) return <Loading what="the image" />;
  const c = data.config;
  // kiln history: layers pair with history entries that are not empty_layer, in order.
  let layer = 0;
  const history = (c?.history ?? []).map((h) => ({ ...h, layer: h.emptyLayer ? undefined : data.layers?.[layer++] }));
  return (
    <section>
      <p class="crumbs">
        <Link href={repoHref(name)}>{name}</Link>
      </p>
      <h1 class="wrap">
        {name}
        {reference.includes(':') ? '@' : ':'}
        {reference}
      </h1>
      <dl class="facts">
        <dt>Digest</dt>
        <dd>
          <code class="wrap">{data.digest}</code> <CopyButton text={data.digest} label="Copy the digest" />
        </dd>
        <dt>Media type</dt>
        <dd>
          <code>{data.mediaType}</code>
        </dd>
        <dt>Tags</dt>
        <dd>{data.tags.length ? data.tags.join(', ') : '–'}</dd>
        {c?.platform?.os && (
          <>
            <dt>Platform</dt>
            <dd>{platformText(c.platform)}</dd>
          </>
        )}
        {c?.created && (
          <>
            <dt>Created</dt>
            <dd>
              <Time ms={Date.parse(c.created)} />
            </dd>
          </>
        )}
      </dl>
      {data.kind === 'unknown' && (
        <>
          <p class="note">{data.note}</p>
          {data.rawTruncated && <p class="note">Only the first {data.raw?.length.toLocaleString('en')} characters of its {data.rawTruncated.toLocaleString('en')} bytes are shown.</p>}
          <pre class="raw" aria-label="The manifest as stored">
            {data.raw}
          </pre>
        </>
      )}
      {data.kind === 'index' && (
        <>
          <h2>Platforms</h2>
          <div class="scroll">
            <table class="list">
              <thead>
                <tr>
                  <th scope="col">Platform</th>
                  <th scope="col">Digest</th>
                  <th scope="col" class="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {(data.manifests ?? []).map((m) => (
                  <tr key={m.digest}>
                    <td>{m.platform ? platformText(m.platform) : '–'}</td>
                    <td>
                      <Link href={imageHref(name, m.digest)}>
                        <code>{shortDigest(m.digest)}</code>
                      </Link>
                    </td>
                    <td class="num">
                      <Size bytes={m.size} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {data.kind === 'image' && (
        <>
          <h2>Config</h2>
          {c?.note ? (
            <>
              <p class="note">{c.note}</p>
              {c.raw && <pre class="raw">{c.raw}</pre>}
            </>
          ) : (
            <dl class="facts">
              <dt>Entrypoint</dt>
              <dd>
                <code class="wrap">{words(c?.entrypoint)}</code>
              </dd>
              <dt>Cmd</dt>
              <dd>
                <code class="wrap">{words(c?.cmd)}</code>
              </dd>
              <dt>User</dt>
              <dd>{c?.user || '–'}</dd>
              <dt>Working directory</dt>
              <dd>{c?.workingDir || '–'}</dd>
              <dt>Ports</dt>
              <dd>{c?.ports?.length ? c.ports.join(', ') : '–'}</dd>
              <dt>Environment</dt>
              <dd>
                {c?.env?.length ? (
                  <ul class="plain">
                    {c.env.map((e, i) => (
                      <li key={i}>
                        <code class="wrap">{e}</code>
                      </li>
                    ))}
                  </ul>
                ) : (
                  '–'
                )}
              </dd>
            </dl>
          )}
          {c?.envTruncated && <p class="note">Only the first {c.env?.length} of {c.envTruncated} environment variables are shown.</p>}
          <KeyValues map={c?.labels} caption="Labels" />
          {c?.labelsTruncated && <p class="note">Only the first {Object.keys(c.labels ?? {}).length} of {c.labelsTruncated} labels are shown.</p>}
          <KeyValues map={data.annotations} caption="Annotations" />
          <h2>History</h2>
          {c?.historyTruncated && <p class="note">Only the first {history.length} of {c.historyTruncated} entries are shown.</p>}
          {history.length === 0 ? (
            <p class="muted">The config records no history.</p>
          ) : (
            <div class="scroll">
              <table class="list history">
                <thead>
                  <tr>
                    <th scope="col">Created</th>
                    <th scope="col">Created by</th>
                    <th scope="col" class="num">Size</th>
                  </tr>
                </thead>
                <tbody>
                  {history.map((h, i) => (
                    <tr key={i}>
                      <td>{h.created ? <Time ms={Date.parse(h.created)} /> : '–'}</td>
                      <td>
                        <code class="wrap">{h.createdBy ?? ''}</code>
                        {h.comment && <span class="muted"> {h.comment}</span>}
                      </td>
                      <td class="num">{h.layer ? <Size bytes={h.layer.size} /> : <span class="muted">0 B</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h2>Layers</h2>
          {data.layersTruncated && <p class="note">Only the first {data.layers?.length} of {data.layersTruncated} layers are shown.</p>}
          <div class="scroll">
            <table class="list">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Digest</th>
                  <th scope="col">Media type</th>
                  <th scope="col" class="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {(data.layers ?? []).map((l, i) => (
                  <tr key={i}>
                    <td>{i + 1}</td>
                    <td>
                      <code title={l.digest}>{shortDigest(l.digest)}</code>
                    </td>
                    <td>
                      <code>{l.mediaType}</code>
                    </td>
                    <td class="num">
                      <Size bytes={l.size} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Files per layer</h3>
          <p class="muted">What each layer adds, changes and removes, as kiln analyze counts it.</p>
          {(data.layers ?? []).map((l, i) => (
            <LayerFiles key={`${i}-${l.digest}`} repository={name} reference={data.digest} layer={i} />
          ))}
        </>
      )}
      {data.kind !== 'unknown' && <Lineage key={data.digest} repository={name} digest={data.digest} base={data.base} />}
      <Referrers key={data.digest} repository={name} referrers={data.referrers} />
      {data.kind !== 'unknown' && <Signatures key={`sig-${data.digest}`} repository={name} digest={data.digest} />}
    </section>
  );
}

import { api, qs, type BaseLink, type Lineage as LineageView } from '../api.js';
import { imageHref } from '../router.js';
import { shortDigest } from '../format.js';
import { ErrorNote, Link, Loading, useLoad } from '../ui.js';

// An image's place in the registry's lineage: the base it was built on (image-spec annotations.md,
// org.opencontainers.image.base.digest and .name, linked when this registry holds it and the visitor
// may pull it) and the images built on it (GET /kiln/v1/lineage).

function Base({ base }: { base: BaseLink | undefined }) {
  if (!base) return <p class="muted">No base recorded (the manifest has no org.opencontainers.image.base.digest annotation).</p>;
  const text = (
    <>
      {base.name ?? 'unnamed'} <code>{shortDigest(base.digest)}</code>
    </>
  );
  return (
    <p>
      Built on{' '}
      {base.repository ? (
        <Link href={imageHref(base.repository, base.digest)} title={base.digest}>
          {text}
        </Link>
      ) : (
        <span title={base.digest}>
          {text} <span class="muted">(not in this registry, or not visible to you)</span>
        </span>
      )}
    </p>
  );
}

export function Lineage({ repository, digest, base }: { repository: string; digest: string; base: BaseLink | undefined }) {
  const { data, error } = useLoad(() => api<LineageView>('GET', `/kiln/v1/lineage${qs({ repository, reference: digest })}`), [repository, digest]);
  return (
    <>
      <h2>Lineage</h2>
      <Base base={base} />
      <h3>Images built on it</h3>
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <Loading what="the images built on it" />
      ) : data.builtOn.length === 0 ? (
        <p class="muted">No image you may pull names this one as its base.</p>
      ) : (
        <ul class="lineage">
          {data.builtOn.map((c) => (
            <li key={`${c.repository}@${c.digest}`} data-depth={c.depth}>
              <Link href={imageHref(c.repository, c.tags[0] ?? c.digest)}>
                {c.repository}
                {c.tags[0] ? `:${c.tags[0]}` : '@' + shortDigest(c.digest)}
              </Link>
              {c.depth > 1 && <span class="muted"> (through {c.depth - 1} image{c.depth > 2 ? 's' : ''} built on this one)</span>}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

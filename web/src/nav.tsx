import type { Session } from './api.js';
import type { Route } from './router.js';
import { navigate } from './router.js';

// The header's links to the pages beyond browsing, for those signed in: namespaces (members,
// robots, visibility), the audit log, and garbage collection for system administrators (what the
// session answer says; the GC API refuses everyone else too). Plain links: Tab reaches each.

export function GovernanceNav({ route, session }: { route: Route; session?: Session }) {
  if (!session?.user) return null;
  const items: [string, string, boolean][] = [
    ['/', 'Repositories', route.page === 'home' || route.page === 'repo' || route.page === 'image'],
    ['/ui/namespaces', 'Namespaces', route.page === 'namespaces' || route.page === 'namespace'],
    ['/ui/audit', 'Audit log', route.page === 'audit'],
  ];
  if (session.admin) items.push(['/ui/gc', 'Garbage collection', route.page === 'gc']);
  return (
    <nav aria-label="Registry" class="sections">
      {items.map(([href, text, current]) => (
        <a
          key={href}
          href={href}
          aria-current={current ? 'page' : undefined}
          onClick={(e) => {
            if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
            e.preventDefault();
            navigate(href);
          }}
        >
          {text}
        </a>
      ))}
    </nav>
  );
}

/** A tree drawn with box-drawing branches, children under their parent, as `tree(1)` draws it. */
export function renderTree<T>(roots: T[], children: (node: T) => T[], label: (node: T) => string): string {
  let out = '';
  const walk = (node: T, prefix: string, last: boolean, top: boolean) => {
    out += (top ? '' : prefix + (last ? '└── ' : '├── ')) + label(node) + '\n';
    const kids = children(node);
    const next = top ? '' : prefix + (last ? '    ' : '│   ');
    kids.forEach((k, i) => walk(k, next, i === kids.length - 1, false));
  };
  for (const r of roots) walk(r, '', true, true);
  return out;
}

// What a cataloger reads out of one metadata file: packages without the facts only the whole image
// knows (purl needs the distro, the layer comes from the walk), and problems to report with the path.

export interface CatalogedPackage {
  type: 'deb' | 'apk' | 'python' | 'npm';
  name: string;
  version: string;
  licenses: string[];
  source?: { name: string; version: string };
  arch?: string;
}

export interface Cataloged {
  packages: CatalogedPackage[];
  problems: string[];
}

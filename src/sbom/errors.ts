import { KilnError } from '../errors.js';

/** A version string that its ecosystem's grammar does not allow. */
export class VersionSyntax extends KilnError {}

/** A file given as a vulnerability database that is not one, or one of another schema version. */
export class VulnDbInvalid extends KilnError {}

/** An advisory input file (Debian tracker export, OSV record) that is not what its format says. */
export class AdvisoryInvalid extends KilnError {}

/** An SBOM document (a stored or pushed artifact) that is neither SPDX nor CycloneDX JSON, or is malformed. */
export class SbomUnreadable extends KilnError {}

import { KilnError } from '../errors.js';

// Errors of signing and verification. Each message names the file, field or artifact at fault.

/** A key file kiln cannot use: unreadable, of an unsupported type, or the wrong password. */
export class KeyInvalid extends KilnError {}
/** The password does not open an encrypted key. */
export class WrongPassword extends KeyInvalid {}
/** A signature, envelope or bundle that is malformed or does not verify. */
export class SignatureInvalid extends KilnError {}
/** No signature verified: the verify command's failure. */
export class NotVerified extends KilnError {}
/** A policy file (policy.yaml) kiln cannot use: names the file, line and key at fault. */
export class PolicyInvalid extends KilnError {}
/** The client-side policy refuses an image: names the rule. */
export class PolicyRefused extends KilnError {}

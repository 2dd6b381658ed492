// The syntax tree of HCL's native syntax (hashicorp/hcl hclsyntax/spec.md), as bake files use it.
// Written by hand: there is no maintained HCL2 library for Node (the npm packages either wrap Go
// through WebAssembly or parse HCL1 only), and bake needs only the native syntax's expressions.

/** A place in a file, 1-based, for messages: file:line:col. */
export interface Pos {
  file: string;
  line: number;
  col: number;
}

export const at = (p: Pos): string => `${p.file}:${p.line}:${p.col}`;

/** An error of HCL syntax or evaluation; the message starts with file:line:col. */
export class HclError extends Error {
  constructor(
    readonly pos: Pos,
    readonly why: string,
  ) {
    super(`${at(pos)}: ${why}`);
  }
}

export interface Body {
  attributes: Attribute[];
  blocks: Block[];
}

export interface Attribute {
  name: string;
  expr: Expr;
  pos: Pos;
}

export interface Block {
  type: string;
  labels: string[];
  body: Body;
  pos: Pos;
}

/** A template's parts: literal text, an interpolation, or an %{if}/%{for} directive. */
export type TemplatePart = string | Expr | TemplateIf | TemplateFor;
export interface TemplateIf {
  k: 'tif';
  cond: Expr;
  then: TemplatePart[];
  else: TemplatePart[];
}
export interface TemplateFor {
  k: 'tfor';
  keyVar?: string;
  valVar: string;
  coll: Expr;
  body: TemplatePart[];
}

export type Expr =
  | { k: 'lit'; v: Value; pos: Pos }
  | { k: 'tpl'; parts: TemplatePart[]; pos: Pos }
  | { k: 'var'; name: string; pos: Pos }
  | { k: 'tuple'; items: Expr[]; pos: Pos }
  | { k: 'object'; items: { key: Expr; value: Expr }[]; pos: Pos }
  | { k: 'call'; name: string; args: Expr[]; expand: boolean; pos: Pos }
  | { k: 'cond'; cond: Expr; then: Expr; else: Expr; pos: Pos }
  | { k: 'unary'; op: '!' | '-'; e: Expr; pos: Pos }
  | { k: 'binary'; op: string; l: Expr; r: Expr; pos: Pos }
  | { k: 'index'; e: Expr; i: Expr; pos: Pos }
  | { k: 'attr'; e: Expr; name: string; pos: Pos }
  | { k: 'splat'; e: Expr; names: string[]; pos: Pos }
  | { k: 'for'; keyVar?: string; valVar: string; coll: Expr; keyExpr?: Expr; valExpr: Expr; cond?: Expr; group: boolean; pos: Pos };

/** HCL values as plain data: cty's lists, tuples and sets are arrays; maps and objects are records. */
export type Value = null | string | number | boolean | Value[] | { [k: string]: Value };

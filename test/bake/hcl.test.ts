// docker-bake.hcl: the HCL reader and buildx's bake semantics on it. Most cases mirror a test of
// docker/buildx (bake/hcl_test.go, bake/bake_test.go; named after it) as our own assertions on the
// evaluated document or the BakeTarget it validates to; the last one bakes a real HCL file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluateHcl } from '../../src/bake/hcl/bake.js';
import { parseBakeFile, parseBakeFiles, selectNamed, type BakeFile } from '../../src/bake/file.js';
import { BakeFileInvalid } from '../../src/bake/errors.js';
import { Store } from '../../src/store/store.js';
import { fixture, kiln, kilnOk, tempDir } from '../support/env.js';

/** The evaluated document of one HCL file ({target, group}), with the given environment. */
const doc = (text: string, env: Record<string, string> = {}) => evaluateHcl([{ path: 'docker-bake.hcl', text }], env).doc;
const bake = (text: string, env: Record<string, string> = {}): BakeFile => parseBakeFile(text, '/p/docker-bake.hcl', env);
const fails = (text: string, want: RegExp, env: Record<string, string> = {}) =>
  assert.throws(() => parseBakeFile(text, 'docker-bake.hcl', env), (e: Error) => e instanceof BakeFileInvalid && want.test(e.message), text);

test('TestHCLBasic: groups, targets, args, platforms, object outputs and inherits', () => {
  const f = bake(`
    group "default" {
      targets = ["db", "webapp"]
    }
    target "db" {
      context = "./db"
      tags = ["docker.io/tonistiigi/db"]
      output = ["type=image"]
    }
    target "webapp" {
      context = "./dir"
      dockerfile = "Dockerfile-alternate"
      tags = ["webapp"]
      args = {
        buildno = "123"
      }
      output = [
        { type = "image" }
      ]
    }
    target "cross" {
      tags = ["cross"]
      platforms = [
        "linux/amd64",
        "linux/arm64"
      ]
    }
    target "webapp-plus" {
      inherits = ["webapp", "cross"]
      tags = ["webapp-plus"]
      args = {
        IAMCROSS = "true"
      }
    }
  `);
  assert.deepEqual(f.groups.get('default'), ['db', 'webapp']);
  assert.deepEqual([...f.targets.keys()], ['db', 'webapp', 'cross', 'webapp-plus']);
  assert.equal(f.targets.get('db')!.context, '/p/db');
  assert.deepEqual(f.targets.get('webapp')!.args, { buildno: '123' });
  const plus = f.targets.get('webapp-plus')!;
  // Inherited: webapp's context, dockerfile and args merged under its own; cross's platforms.
  assert.equal(plus.dockerfile, '/p/dir/Dockerfile-alternate');
  assert.deepEqual(plus.args, { buildno: '123', IAMCROSS: 'true' });
  assert.deepEqual(plus.platforms.map((p) => p.architecture), ['amd64', 'arm64']);
  assert.deepEqual(plus.tags, ['webapp-plus']);
});

test('TestHCLWithFunctions and TestHCLWithUserDefinedFunctions: stdlib and function blocks', () => {
  const f = bake(`
    function "increment" {
      params = [number]
      result = number + 1
    }
    function "tags" {
      params = [repo]
      variadic_params = versions
      result = [for v in versions : "\${repo}:\${v}"]
    }
    target "webapp" {
      args = {
        buildno = "\${add(123, 1)}"
        next = "\${increment(123)}"
        joined = join(",", concat(["a"], ["b", "c"]))
        sum = sha256("x")
        fmt = format("%s-%03d", "v", 7)
        t = title("hello world")
        s = sanitize("a/b:c")
        k = jsonencode(keys({b = 1, a = 2}))
      }
      tags = tags("repo", "1", "2")
    }
  `);
  const webapp = f.targets.get('webapp')!;
  // "${x}" alone is x itself (a number here), made a string as buildx's args are.
  assert.deepEqual(webapp.args, {
    buildno: '124',
    next: '124',
    joined: 'a,b,c',
    sum: '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881',
    fmt: 'v-007',
    t: 'Hello World',
    s: 'a_b_c',
    k: '["a","b"]',
  });
  assert.deepEqual(webapp.tags, ['repo:1', 'repo:2']);
});

test('TestHCLWithVariablesInFunctions and TestHCLTypedVariables: variables set through the environment, typed as their default', () => {
  const text = `
    variable "REPO" { default = "user/repo" }
    variable "FOO" { default = 3 }
    variable "IS_FOO" { default = true }
    function "tag" {
      params = [tag]
      result = ["\${REPO}:\${tag}"]
    }
    target "webapp" {
      tags = tag("v1")
      args = {
        v1 = FOO > 5 ? "higher" : "lower"
        v2 = IS_FOO ? "yes" : "no"
      }
    }
  `;
  assert.deepEqual(doc(text).target.webapp, { tags: ['user/repo:v1'], args: { v1: 'lower', v2: 'yes' } });
  assert.deepEqual(doc(text, { REPO: 'docker/buildx', FOO: '5.1', IS_FOO: '0' }).target.webapp, { tags: ['docker/buildx:v1'], args: { v1: 'higher', v2: 'no' } });
  fails(text, /^docker-bake\.hcl:3:22: failed to parse FOO as number: "NaN"/, { FOO: 'NaN' });
  fails(text, /^docker-bake\.hcl:4:25: failed to parse IS_FOO as bool: "maybe"/, { IS_FOO: 'maybe' });
});

test('TestHCLMultiFileAttrs and TestHCLMultiFileGlobalAttrs: later files override a variable default and a target field', () => {
  const files = (env: Record<string, string>) =>
    parseBakeFiles(
      [
        { path: '/p/c1.hcl', text: 'variable "FOO" {\n  default = "abc"\n}\ntarget "app" {\n  tags = ["app"]\n  args = {\n    v1 = "pre-${FOO}"\n  }\n}\n' },
        { path: '/p/c2.hcl', text: 'FOO = "def"\n' },
        { path: '/p/c3.json', text: '{"target": {"app": {"tags": ["app:override"]}}}' },
      ],
      env,
    );
  const app = files({}).targets.get('app')!;
  assert.deepEqual(app.args, { v1: 'pre-def' });
  assert.deepEqual(app.tags, ['app:override']);
  assert.deepEqual(files({ FOO: 'ghi' }).targets.get('app')!.args, { v1: 'pre-ghi' });
});

test('TestHCLDuplicateTarget, TestHCLTargetAttrs, TestHCLTargetGlobal: repeated blocks merge, target.NAME.FIELD reads another target', () => {
  const d = doc(`
    target "app" {
      dockerfile = "x"
      tags = ["t"]
    }
    target "app" {
      dockerfile = "y"
    }
    target "foo" {
      dockerfile = "xxx"
      context = target.bar.context
      target = target.foo.dockerfile
    }
    target "bar" {
      dockerfile = target.foo.dockerfile
      context = "yyy"
      target = target.bar.context
    }
    x = target.foo.dockerfile
    y = x
    target "baz" {
      dockerfile = y
    }
  `);
  assert.deepEqual(d.target.app, { dockerfile: 'y', tags: ['t'] });
  assert.deepEqual(d.target.foo, { dockerfile: 'xxx', context: 'yyy', target: 'xxx' });
  assert.deepEqual(d.target.bar, { dockerfile: 'xxx', context: 'yyy', target: 'yyy' });
  assert.deepEqual(d.target.baz, { dockerfile: 'xxx' });
});

test('TestHCLMatrixBasic, TestHCLMatrixMaps, TestHCLIndexOfFunc: a matrix expands a target, and its name groups the expansions', () => {
  const d = doc(`
    target "default" {
      matrix = {
        foo = ["x", "y"]
      }
      name = foo
      dockerfile = "\${foo}.Dockerfile"
    }
    target "maps" {
      matrix = {
        aa = [{ foo = "aa", bar = "bb" }, { foo = "cc", bar = "dd" }]
      }
      name = aa.foo
      args = { target = "val\${aa.bar}" }
    }
    variable "APP_VERSIONS" {
      default = ["1.42.4", "1.42.3"]
    }
    target "app" {
      matrix = { app_version = APP_VERSIONS }
      name = "app-\${replace(app_version, ".", "-")}"
      tags = ["app:\${app_version}", indexof(APP_VERSIONS, app_version) == 0 ? "app:latest" : ""]
    }
    group "all" { targets = ["default", "app"] }
  `);
  assert.deepEqual(Object.keys(d.target), ['x', 'y', 'aa', 'cc', 'app-1-42-4', 'app-1-42-3']);
  assert.equal(d.target.x!.dockerfile, 'x.Dockerfile');
  assert.deepEqual(d.target.cc!.args, { target: 'valdd' });
  assert.deepEqual(d.target['app-1-42-4']!.tags, ['app:1.42.4', 'app:latest']);
  assert.deepEqual(d.group.default, { targets: ['x', 'y'] });
  // A group naming the matrix target builds all of its targets.
  const f = bake('target "a" {\n  matrix = { v = ["1", "2"] }\n  name = "a-${v}"\n  tags = ["a:${v}"]\n}\ngroup "default" { targets = ["a"] }\n');
  assert.deepEqual([...selectNamed(f, [])], ['a-1', 'a-2']);
});

test('TestHCLRenameTarget, TestHCLMatrixDuplicateNames, TestHCLMatrixBadTypes: a matrix needs a name, a name needs a matrix', () => {
  fails('target "abc" {\n  matrix = { v = ["1"] }\n  tags = ["x"]\n}\n', /^docker-bake\.hcl:2:3: target "abc": a matrix needs a name/);
  fails('target "abc" {\n  name = "xyz"\n  tags = ["x"]\n}\n', /^docker-bake\.hcl:2:3: target "abc": name requires matrix$/);
  fails('target "d" {\n  matrix = { foo = ["a", "b"] }\n  name = "c"\n}\n', /^docker-bake\.hcl:3:3: target "d": duplicate name "c"$/);
  fails('target "d" {\n  matrix = { a = "b" }\n  name = a\n}\n', /^docker-bake\.hcl:2:3: target "d": matrix values must be lists/);
  fails('target "d" {\n  matrix = ["test"]\n  name = "x"\n}\n', /^docker-bake\.hcl:2:3: target "d": matrix: expected an object, got tuple$/);
});

test('TestHCLVariableCycle and unknown names: each error names file:line:col', () => {
  fails('variable "FOO" {\n  default = BAR\n}\nvariable "FOO2" {\n  default = FOO\n}\nvariable "BAR" {\n  default = FOO\n}\ntarget "app" {}\n', /^docker-bake\.hcl:\d+:13: variable cycle not allowed for (FOO|BAR)$/);
  fails('target "a" {\n  tags = ["x:${NOPE}"]\n}\n', /^docker-bake\.hcl:2:16: unknown variable "NOPE"$/);
  fails('target "a" {\n  tags = [nope("x")]\n}\n', /^docker-bake\.hcl:2:11: call to unknown function "nope"$/);
  fails('target "a" {\n  tags = [upper()]\n}\n', /^docker-bake\.hcl:2:11: upper\(\): expected 1 argument, got 0$/);
  fails('target "a" {\n  tags = [target.b.tags]\n}\n', /^docker-bake\.hcl:2:11: target\.b: no target "b"$/);
});

test('bad syntax: unterminated strings, heredocs, comments and brackets name file:line:col', () => {
  fails('target "a" {\n  tags = ["x:1]\n}\n', /^docker-bake\.hcl:2:11: unterminated string/);
  fails('target "a" {\n  dockerfile = <<EOT\nabc\n}\n', /^docker-bake\.hcl:2:16: unterminated heredoc: no line "EOT" closes it$/);
  fails('target "a" {\n  tags = ["x"]\n/* never closed\n}\n', /^docker-bake\.hcl:3:1: unterminated \/\* comment$/);
  fails('target "a" {\n  tags = ["x", "y"\n}\n', /^docker-bake\.hcl:3:1: expected "," or "\]" in the tuple, got "}"$/);
  fails('target "a" {\n  tags = ["x"] ]\n}\n', /^docker-bake\.hcl:2:16: expected a newline after "tags", got "\]"$/);
  fails('target "a" {\n  tags = ["x"]\n', /^docker-bake\.hcl:3:1: expected "}" to close the block, got end of file$/);
  fails('targets "a" {\n}\n', /^docker-bake\.hcl:1:1: unknown block type "targets"/);
});

test('expressions: templates, directives, heredocs, operators, for expressions, indexes and splats', () => {
  const d = doc(`
    list = ["a", "b", "c"]
    obj = { k = "v", "quoted": 2 }
    target "e" {
      args = {
        tpl = "$\${LITERAL} %{ if length(list) > 2 }many%{ else }few%{ endif } %{ for i, x in list }\${i}\${x}%{ endfor }"
        strip = "a \${~ "b" ~} c"
        arith = 1 + 2 * 3 - 8 / 4 % 3
        cmp = 1 < 2 && !(2 >= 3) || false
        eq = [1, "a"] == [1, "a"] ? "eq" : "ne"
        neg = -obj.quoted
        idx = list[1]
        legacy = list.2
        key = obj["k"]
        esc = "tab\\tquote\\"\\u00e9"
      }
      labels = { for k, v in obj : upper(k) => v }
      tags = [for x in list : "r/\${x}" if x != "b"]
      platforms = [for o in [{ p = "linux/amd64" }, { p = "linux/arm64" }] : o.p]
      dockerfile = <<-EOT
        FROM busybox
          RUN echo \${list[0]}
        EOT
      target = <<EOT
  kept indent
EOT
      ssh = [{ n = "x" }, { n = "y" }][*].n
    }
  `);
  const e = d.target.e!;
  assert.deepEqual(e.args, {
    tpl: '${LITERAL} many 0a1b2c',
    strip: 'abc',
    arith: 5,
    cmp: true,
    eq: 'eq',
    neg: -2,
    idx: 'b',
    legacy: 'c',
    key: 'v',
    esc: 'tab\tquote"é',
  });
  assert.deepEqual(e.labels, { K: 'v', QUOTED: 2 });
  assert.deepEqual(e.tags, ['r/a', 'r/c']);
  assert.deepEqual(e.platforms, ['linux/amd64', 'linux/arm64']);
  assert.equal(e.dockerfile, 'FROM busybox\n  RUN echo a\n');
  assert.equal(e.target, '  kept indent\n');
  assert.deepEqual(e.ssh, ['x', 'y']);
});

test('TestVariableValidation: a failing condition is an error with its message at the condition', () => {
  const text = 'variable "FOO" {\n  default = "bar"\n  validation {\n    condition = FOO != ""\n    error_message = "FOO is required."\n  }\n}\ntarget "app" {\n  tags = ["app:${FOO}"]\n}\n';
  assert.deepEqual(doc(text).target.app!.tags, ['app:bar']);
  fails(text, /^docker-bake\.hcl:4:5: FOO is required\.$/, { FOO: '' });
});

test('TestHCLNullVars: a null attribute is unset, and a null arg keeps the inherited one', () => {
  const f = bake('target "base" {\n  tags = ["b"]\n  args = { A = "1", B = "2" }\n}\ntarget "app" {\n  inherits = ["base"]\n  tags = ["a"]\n  dockerfile = null\n  args = { A = null, C = "3" }\n}\n');
  assert.deepEqual(f.targets.get('app')!.args, { A: '1', B: '2', C: '3' });
  assert.equal(f.targets.get('app')!.dockerfile, '/p/Dockerfile');
});

test('TestNestedInherits and TestReadContextFromTargetInfiniteLoop: inherits in every form, unknown and looping parents refused', () => {
  const yaml = parseBakeFile('target:\n  a: {tags: [a], args: {A: "1"}, cache-from: ["type=registry,ref=r.test/a:cache"]}\n  b: {inherits: [a], tags: [b], args: {B: "2"}, cache-from: ["type=registry,ref=r.test/b:cache"]}\n  c: {inherits: [b], tags: [c]}\n', '/p/kiln-bake.yaml');
  const c = yaml.targets.get('c')!;
  assert.deepEqual(c.args, { A: '1', B: '2' });
  assert.equal(c.cacheFrom.length, 2, 'cache-from appends, as buildx merges it');
  assert.deepEqual(c.tags, ['c']);
  fails('target "a" {\n  tags = ["x"]\n  inherits = ["nope"]\n}\n', /^docker-bake\.hcl:3:3: target\.a\.inherits: "nope" is not a target of the file$/);
  fails('target "a" {\n  inherits = ["b"]\n}\ntarget "b" {\n  inherits = ["a"]\n  tags = ["y"]\n}\n', /^docker-bake\.hcl:5:3: target\.b\.inherits: infinite loop from b to a/);
  assert.throws(() => parseBakeFile('target:\n  a: {tags: [a], matrix: {v: [1]}}\n', 'kiln-bake.yaml'), /kiln-bake\.yaml:2: target\.a\.matrix: matrix is read from HCL bake files only/);
});

// The layout of buildx files: a `_common` target (or the docker/metadata-action's empty
// `docker-metadata-action`) only inherited, and tags chosen by a condition that writes "" when it
// does not apply (buildx bake.go normalize: removeDupesStr drops empty and repeated tags).
test('an untagged target others inherit is a template, not built; empty and repeated tags are dropped', () => {
  const text = `
    variable "TAG" { default = "latest" }
    target "docker-metadata-action" {}
    target "_common" {
      args = { GO_VERSION = "1.22" }
    }
    target "app" {
      inherits = ["_common", "docker-metadata-action"]
      tags = ["app:\${TAG}", notequal("latest", TAG) ? "app:latest" : "", "app:\${TAG}"]
    }
  `;
  const f = bake(text);
  assert.deepEqual([...f.targets.keys()], ['app']);
  assert.deepEqual(f.targets.get('app')!.tags, ['app:latest']);
  assert.deepEqual(f.targets.get('app')!.args, { GO_VERSION: '1.22' });
  assert.deepEqual(bake(text, { TAG: 'v2' }).targets.get('app')!.tags, ['app:v2', 'app:latest']);
  // Named in a group, a template would have to be built: that is refused, saying why.
  fails(`${text}\ngroup "default" {\n  targets = ["app", "_common"]\n}\n`, /group\.default\.targets: target "_common" is a template/);
  // docker/metadata-action's bake file, read after ours: its target has the tags its child takes.
  const meta = JSON.stringify({ target: { 'docker-metadata-action': { tags: ['ghcr.io/o/app:1.2.3', 'ghcr.io/o/app:1.2'], labels: { 'org.opencontainers.image.version': '1.2.3' } } } });
  const ours = 'target "docker-metadata-action" {}\ntarget "build" {\n  inherits = ["docker-metadata-action"]\n  context = "./"\n}\n';
  const both = parseBakeFiles([{ path: '/p/docker-bake.hcl', text: ours }, { path: '/p/docker-metadata-action-bake.json', text: meta }], {});
  assert.deepEqual([...both.targets.keys()], ['build']);
  assert.deepEqual(both.targets.get('build')!.tags, ['ghcr.io/o/app:1.2.3', 'ghcr.io/o/app:1.2']);
  assert.equal(both.targets.get('build')!.labels['org.opencontainers.image.version'], '1.2.3');
  // A target nobody inherits still needs a tag.
  fails('target "lonely" {\n  context = "."\n}\n', /target\.lonely\.tags: a target needs at least one tag/);
});

test('TestHCLBasicInJSON: a .hcl file holding JSON is read as JSON; a field error of an HCL file keeps the validation message', () => {
  const f = parseBakeFile('{"target": {"app": {"tags": ["app"], "args": {"A": "1"}}}}', '/p/docker-bake.hcl');
  assert.deepEqual(f.targets.get('app')!.args, { A: '1' });
  fails('target "a" {\n  tags = ["x"]\n  network = "host"\n}\n', /^docker-bake\.hcl:3:3: target\.a\.network: not supported by kiln bake$/);
  fails('target "a" {\n  tags = "x"\n}\n', /^docker-bake\.hcl:2:3: target\.a\.tags: expected a list of strings, got string "x"$/);
});

test('kiln bake reads docker-bake.hcl and docker-bake.override.hcl: two targets, one inheriting the other\'s args, tagged from a variable set in the environment', async (t) => {
  const work = await tempDir(t, 'kiln-bake-hcl-');
  const root = join(work, 'store');
  await mkdir(join(work, 'p'), { recursive: true });
  await writeFile(join(work, 'p', 'Dockerfile'), 'FROM busybox\nARG FLAVOR\nLABEL flavor=$FLAVOR\n');
  await writeFile(
    join(work, 'p', 'docker-bake.hcl'),
    `variable "TAG" {\n  default = "dev"\n}\ngroup "default" {\n  targets = ["base", "child"]\n}\ntarget "base" {\n  tags = ["kiln.test/hcl-base:\${TAG}"]\n  args = { FLAVOR = "plain" }\n}\ntarget "child" {\n  inherits = ["base"]\n  tags = ["kiln.test/hcl-child:\${TAG}"]\n}\n`,
  );
  // Found beside it without -f, and read over it: buildx's default files.
  await writeFile(join(work, 'p', 'docker-bake.override.hcl'), 'target "child" {\n  labels = { from = "override" }\n}\n');
  await kilnOk(root, ['load', '-q', '-i', fixture('busybox')]);
  const r = await kiln(root, ['bake', '--progress', 'quiet'], { cwd: join(work, 'p'), env: { TAG: 'v7' } });
  assert.equal(r.code, 0, r.stderr);
  const store = await Store.open(root);
  const labels = async (ref: string) => (await store.resolveImage(ref)).config.config?.Labels;
  assert.deepEqual(await labels('kiln.test/hcl-base:v7'), { flavor: 'plain' });
  assert.deepEqual(await labels('kiln.test/hcl-child:v7'), { flavor: 'plain', from: 'override' });
});

test('TestReadTargets and TestOverrideMerge: --set overrides fields after inherits, by pattern, appending with +=', () => {
  const text = 'target "webDEP" {\n  tags = ["dep"]\n  args = { VAR_INHERITED = "webDEP", VAR_BOTH = "webDEP" }\n}\ntarget "webapp" {\n  inherits = ["webDEP"]\n  tags = ["app:1"]\n  args = { VAR_BOTH = "webapp" }\n}\n';
  const sets = ['webapp.args.VAR_BOTH=override', 'webapp.args.FROMENV', 'webapp.tags+=app:2', 'web*.platform=linux/arm64', 'webDEP.no-cache=1', 'webDEP.dockerfile=Other.Dockerfile'];
  const f = parseBakeFiles([{ path: '/p/docker-bake.hcl', text }], { FROMENV: 'e' }, sets);
  const app = f.targets.get('webapp')!;
  assert.deepEqual(app.args, { VAR_INHERITED: 'webDEP', VAR_BOTH: 'override', FROMENV: 'e' });
  assert.deepEqual(app.tags, ['app:1', 'app:2']);
  assert.deepEqual(app.platforms.map((p) => p.architecture), ['arm64']);
  assert.equal(app.noCache, false);
  const dep = f.targets.get('webDEP')!;
  assert.equal(dep.noCache, true);
  assert.equal(dep.dockerfile, '/p/Other.Dockerfile');
  assert.deepEqual(dep.platforms.map((p) => p.architecture), ['arm64']);
  const refused = (set: string, want: RegExp) => assert.throws(() => parseBakeFiles([{ path: 'docker-bake.hcl', text }], {}, [set]), want);
  refused('nope.tags=x', /^BakeFileInvalid: --set nope\.tags=x: could not find any target matching "nope"$/);
  refused('webapp.network=host', /--set webapp\.network=host: unknown key "network"/);
  refused('webapp.no-cache=maybe', /invalid value maybe for boolean key no-cache$/);
  refused('webapp.args=x', /args requires a name/);
});

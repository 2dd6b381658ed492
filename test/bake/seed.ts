import { mkdir, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';

// The seed article's image hierarchy (alpine → pyenv → python → flask → flask-helloworld), offline:
// busybox instead of alpine, and every RUN cheap (echo and busybox applets, no apk or git clone).
// Each image has its own directory and the labels the article gives it; the "python" directory
// builds one image per version through a build arg. "tools" is an unrelated branch on busybox.

export const tags = {
  alpine: 'kiln.test/alpine:3.10.2',
  pyenv: 'kiln.test/pyenv:1.2.14',
  'python-3-7': 'kiln.test/python:3.7.4',
  'python-3-8': 'kiln.test/python:3.8.0',
  flask: 'kiln.test/flask:1.1.1',
  app: 'kiln.test/flask-helloworld:1.0.0',
  tools: 'kiln.test/tools:1',
} as const;

export type SeedTarget = keyof typeof tags;

const files: Record<string, string> = {
  'alpine/Dockerfile': `FROM busybox
LABEL relenteny.repository.url=https://github.com/relenteny/alpine
LABEL relenteny.repository.tag=3.10.2
LABEL relenteny.alpine.version=3.10.2
RUN set -x && \\
    echo 'alpine:x:1000:' >> /etc/group && \\
    echo 'alpine:x:1000:1000:alpine:/home/alpine:/bin/sh' >> /etc/passwd && \\
    mkdir -p /home/alpine && chown 1000:1000 /home/alpine
USER alpine
WORKDIR /home/alpine
ENTRYPOINT ["/bin/sh", "-l"]
CMD []
`,
  'pyenv/Dockerfile': `FROM ${tags.alpine}
LABEL relenteny.repository.url=https://github.com/relenteny/python-pyenv
LABEL relenteny.repository.tag=1.2.14
LABEL relenteny.pyenv.version=1.2.14
LABEL relenteny.pyenv.virtualenv.version=1.1.5
COPY build /opt/build
USER root
RUN set -x && \\
    cp -r /opt/build/home/alpine/* /home/alpine && \\
    chmod +x /home/alpine/bin/*.sh && \\
    chown -R alpine:alpine /home/alpine && \\
    rm -rf /opt/build
USER alpine
RUN set -x && \\
    mkdir -p /home/alpine/.pyenv/plugins/pyenv-virtualenv && \\
    echo 'export PYENV_ROOT="$HOME/.pyenv"' >> /home/alpine/.profile && \\
    echo 'export PATH="$PYENV_ROOT/bin:$PATH"' >> /home/alpine/.profile
`,
  'pyenv/build/home/alpine/bin/install-python.sh': `#!/bin/sh
# The runtime manager's installer, offline: records the version instead of compiling Python.
set -e
mkdir -p "$HOME/.pyenv/versions/$1"
echo "Python $1" > "$HOME/.pyenv/versions/$1/VERSION"
echo "$1" > "$HOME/.python-version"
`,
  'pyenv/build/home/alpine/bin/install-requirements.sh': `#!/bin/sh
set -e
mkdir -p "$HOME/site-packages"
while read -r req; do [ -n "$req" ] && echo "$req" > "$HOME/site-packages/$(echo "$req" | cut -d= -f1)"; done < "$1"
`,
  'python/Dockerfile': `FROM ${tags.pyenv}
ARG PYTHON_VERSION
LABEL relenteny.repository.url=https://github.com/relenteny/python
LABEL relenteny.repository.tag=\${PYTHON_VERSION}
LABEL relenteny.python.version=\${PYTHON_VERSION}
RUN /home/alpine/bin/install-python.sh \${PYTHON_VERSION}
`,
  'flask/Dockerfile': `FROM ${tags['python-3-7']}
LABEL relenteny.repository.url=https://github.com/relenteny/flask
LABEL relenteny.repository.tag=1.1.1
LABEL relenteny.flask.version=1.1.1
COPY build /opt/build
USER root
RUN set -x && \\
    cp -r /opt/build/home/alpine/* /home/alpine && \\
    chown -R alpine:alpine /home/alpine/* && \\
    rm -rf /opt/build
USER alpine
RUN set -x && \\
    cd /home/alpine && \\
    bin/install-requirements.sh /home/alpine/requirements.txt && \\
    rm /home/alpine/requirements.txt
`,
  'flask/build/home/alpine/requirements.txt': 'Flask==1.1.1\n',
  'app/Dockerfile': `FROM ${tags.flask}
LABEL relenteny.repository.url=https://github.com/relenteny/flask-helloworld
LABEL relenteny.repository.tag=1.0.0
RUN set -x && \\
    mkdir -p /home/alpine/microblog && \\
    cd /home/alpine/microblog && \\
    echo "FLASK_APP=microblog.py" > .flaskenv
WORKDIR /home/alpine/microblog
ENTRYPOINT ["/bin/sh", "-lc", "flask run --host 0.0.0.0"]
`,
  'tools/Dockerfile': `FROM busybox
LABEL org.opencontainers.image.title=tools
RUN echo tools > /tools
`,
  'kiln-bake.yaml': `# The seed's hierarchy: which image is built on which comes from the Dockerfiles' FROM lines.
target:
  alpine:
    context: alpine
    tags: ["${tags.alpine}"]
    test: tests/alpine.yaml
  pyenv:
    context: pyenv
    tags: ["${tags.pyenv}"]
  python-3-7:
    context: python
    tags: ["${tags['python-3-7']}"]
    args: { PYTHON_VERSION: 3.7.4 }
  python-3-8:
    context: python
    tags: ["${tags['python-3-8']}"]
    args: { PYTHON_VERSION: 3.8.0 }
  flask:
    context: flask
    tags: ["${tags.flask}"]
  app:
    context: app
    tags: ["${tags.app}"]
    test: tests/app.yaml
  tools:
    context: tools
    tags: ["${tags.tools}"]
`,
  'tests/alpine.yaml': `schemaVersion: 2.0.0
metadataTest:
  user: alpine
  workdir: /home/alpine
fileContentTests:
  - name: non-root user
    path: /etc/passwd
    expectedContents: ['alpine:x:1000:1000:']
`,
  'tests/app.yaml': `schemaVersion: 2.0.0
fileContentTests:
  - name: flask installed
    path: /home/alpine/site-packages/Flask
    expectedContents: ['Flask==1\\.1\\.1']
  - name: python version
    path: /home/alpine/.pyenv/versions/3.7.4/VERSION
    expectedContents: ['Python 3\\.7\\.4']
`,
};

/** Write the hierarchy under `dir`; returns the bake file's path. */
export async function writeSeedHierarchy(dir: string): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
    if (path.endsWith('.sh')) await chmod(join(dir, path), 0o755);
  }
  return join(dir, 'kiln-bake.yaml');
}

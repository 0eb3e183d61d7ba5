// AWS's CloudFormation linter (cfn-lint, a Python package scripts/setup.sh installs) run over templates, with the
// project's checked-in configuration (.cfnlintrc.yaml: each ignored warning with its reason). A linter that is
// missing is an error, never a skip: the templates would otherwise go unchecked without anyone noticing.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
export const CFN_LINT_CONFIG = join(ROOT, '.cfnlintrc.yaml');

export interface CfnLintFinding {
  rule: string;
  level: 'Error' | 'Warning' | 'Informational';
  message: string;
  file: string;
  line: number;
}

/** One line per finding, the way a reader wants it in an assertion message. */
export const describeFinding = (f: CfnLintFinding) => `${f.file}:${f.line} ${f.rule} ${f.message}`;

interface RawMatch {
  Rule: { Id: string };
  Level: CfnLintFinding['level'];
  Message: string;
  Filename: string;
  Location: { Start: { LineNumber: number } };
}

/**
 * cfn-lint over `files`, every finding (errors, warnings, informational). It runs through the machine's
 * `python3`, the interpreter scripts/setup.sh checks and installs into, rather than whatever `cfn-lint` is
 * first on PATH.
 */
export function cfnLint(files: string[]): Promise<CfnLintFinding[]> {
  const script = 'import sys; from cfnlint.runner import main; sys.exit(main())';
  const args = ['-c', script, '--config-file', CFN_LINT_CONFIG, '--format', 'json', '--', ...files];
  return new Promise((resolve, reject) => {
    execFile('python3', args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // cfn-lint's exit code is a bit mask of the levels it found (2 error, 4 warning, 8 informational).
      const code = err ? (err as { code?: unknown }).code : 0;
      if (code === 'ENOENT') return reject(new Error('python3 is not on PATH: run scripts/setup.sh'));
      if (/No module named '?cfnlint/.test(stderr))
        return reject(new Error('cfn-lint is not installed for python3: run scripts/setup.sh'));
      if (typeof code !== 'number' || (code & ~(2 | 4 | 8)) !== 0)
        return reject(new Error(`cfn-lint failed (exit ${String(code)}): ${stderr.trim() || stdout.trim()}`));
      try {
        const matches = JSON.parse(stdout) as RawMatch[];
        resolve(
          matches.map((m) => ({
            rule: m.Rule.Id,
            level: m.Level,
            message: m.Message,
            file: m.Filename.replace(ROOT, ''),
            line: m.Location.Start.LineNumber,
          })),
        );
      } catch (cause) {
        reject(
          new Error(`cfn-lint printed no JSON: ${stdout.slice(0, 500)} ${stderr.slice(0, 500)}`, { cause }),
        );
      }
    });
  });
}

/** The installed cfn-lint's version, for messages. */
export function cfnLintVersion(): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      'python3',
      ['-c', 'import importlib.metadata as m; print(m.version("cfn-lint"))'],
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`cfn-lint is not installed for python3: ${stderr.trim()}`))
          : resolve(stdout.trim()),
    ),
  );
}

/**
 * The CloudFormation templates in infra/: YAML files that declare Resources at the top level. The policy
 * fragments beside them (lambda-trust.yml, xray-statement.yml, ...) are pieces serverless.yml includes, not
 * templates.
 */
export async function infraTemplates(): Promise<string[]> {
  const dir = join(ROOT, 'infra');
  const found: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (!/\.ya?ml$/.test(name)) continue;
    const text = await readFile(join(dir, name), 'utf8');
    if (/^Resources:\s*$/m.test(text)) found.push(join(dir, name));
  }
  return found;
}

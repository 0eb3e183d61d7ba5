// What a builder machine must have: the Debian packages of infra/builder/packages.list and, from each, the
// commands the builder code runs and the paths it reads (GRUB's module directories for every boot mode and
// architecture). `stemcell builder --check` verifies them before the agent starts, so a builder image that
// lacks one fails at boot, loudly, instead of at the first build that needs it.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const PACKAGES_LIST = new URL('../../infra/builder/packages.list', import.meta.url).pathname;

export interface Requirement {
  /** Debian package, with its architecture when it is not the machine's (grub-efi-arm64-bin:arm64). */
  package: string;
  /** A command looked up on PATH, or an absolute path that must exist. */
  need: string;
}

/** Parses packages.list: `<package>[:<arch>] <command or /path> …`, # comments. */
export function parsePackagesList(text: string, source = PACKAGES_LIST): Requirement[] {
  const out: Requirement[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [pkg, ...needs] = line.split(/\s+/);
    if (!pkg || !/^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$/.test(pkg) || needs.length === 0) {
      throw new Error(
        `${source}:${i + 1}: expected "<package> <command or /path> …", got ${JSON.stringify(raw)}`,
      );
    }
    for (const need of needs) out.push({ package: pkg, need });
  });
  return out;
}

export function builderRequirements(path = PACKAGES_LIST): Requirement[] {
  return parsePackagesList(readFileSync(path, 'utf8'), path);
}

/** The executable a command resolves to on PATH, if any. */
export function onPath(command: string, path = process.env.PATH ?? ''): string | undefined {
  // sbin directories are on root's PATH, where the builder runs, but not always on a test's.
  const dirs = [...path.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

export interface CheckResult {
  requirement: Requirement;
  found?: string;
}

/** Each requirement with where it was found; a missing one has no `found`. */
export function checkRequirements(requirements = builderRequirements()): CheckResult[] {
  return requirements.map((requirement) => {
    const found = requirement.need.startsWith('/')
      ? existsSync(requirement.need)
        ? requirement.need
        : undefined
      : onPath(requirement.need);
    return found ? { requirement, found } : { requirement };
  });
}

// The volume's partition table: GPT, written with sgdisk and read back with sfdisk --json. Both work on the
// device from user space, so this needs no partition support in the kernel.
import type { BootMode } from '#core/model/types.ts';
import { run } from './exec.ts';

export const SECTOR = 512;
const MiB_SECTORS = (1024 * 1024) / SECTOR;

export const PARTITION_TYPE = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  /** stemcell's own: the builder's state (the apply manifest). No OS mounts a type it does not know. */
  state: '7C22297B-1618-4F7F-BC6D-839F97233F1A',
} as const;

/** Partition numbers as Debian's cloud images number them: root first, boot partitions at the end. */
export const PARTITION_NUMBER = { root: 1, state: 13, biosBoot: 14, esp: 15 } as const;

export interface Partition {
  number: number;
  /** First sector (512 B). */
  start: number;
  /** Length in sectors. */
  sectors: number;
  type: string;
  uuid: string;
  name: string;
}

export interface DiskLayout {
  diskId: string;
  /** Last usable sector of the GPT (the backup header sits after it). */
  lastLba: number;
  root: Partition;
  biosBoot?: Partition;
  esp?: Partition;
  /** The builder's state partition (volumes partitioned before it existed have none). */
  state?: Partition;
}

/** Sizes of the boot partitions: 1 MiB BIOS boot (GRUB's core.img), 63 MiB EFI system partition. */
const BIOS_BOOT = { start: 1 * MiB_SECTORS, sectors: 1 * MiB_SECTORS };
const ESP_SECTORS = 63 * MiB_SECTORS;
/** The state partition: room for a gzip'd manifest of a large tree, twice (the new one is written beside). */
export const STATE_SECTORS = 64 * MiB_SECTORS;

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    id?: string;
    lastlba?: number;
    partitions?: Array<{
      node: string;
      start: number;
      size: number;
      type: string;
      uuid?: string;
      name?: string;
    }>;
  };
}

/** Reads the GPT of `device`; undefined when it has none (a blank disk). */
export async function readLayout(device: string): Promise<DiskLayout | undefined> {
  let json: SfdiskJson;
  try {
    json = JSON.parse(await run('sfdisk', ['--json', device])) as SfdiskJson;
  } catch (err) {
    // sfdisk exits 1 with "does not contain a recognized partition table" on a blank disk.
    if (/does not contain a recognized partition table/.test((err as Error).message)) return undefined;
    throw err;
  }
  const table = json.partitiontable;
  if (table?.label !== 'gpt') return undefined;
  const parts = (table.partitions ?? []).map(
    (p): Partition => ({
      number: Number(/(\d+)$/.exec(p.node)?.[1] ?? Number.NaN),
      start: p.start,
      sectors: p.size,
      type: p.type.toUpperCase(),
      uuid: p.uuid ?? '',
      name: p.name ?? '',
    }),
  );
  const root = parts.find((p) => p.number === PARTITION_NUMBER.root && p.type === PARTITION_TYPE.linux);
  if (!root) throw new Error(`${device}: has a GPT but no Linux root partition ${PARTITION_NUMBER.root}`);
  const layout: DiskLayout = { diskId: table.id ?? '', lastLba: table.lastlba ?? 0, root };
  const biosBoot = parts.find((p) => p.type === PARTITION_TYPE.biosBoot);
  const esp = parts.find((p) => p.type === PARTITION_TYPE.esp);
  const state = parts.find((p) => p.type === PARTITION_TYPE.state);
  if (biosBoot) layout.biosBoot = biosBoot;
  if (esp) layout.esp = esp;
  if (state) layout.state = state;
  return layout;
}

/** Writes a fresh GPT for `bootMode`: boot partition(s) first on disk, then the state partition, the root filling the rest. */
export async function writeLayout(device: string, bootMode: BootMode): Promise<DiskLayout> {
  const args = ['--zap-all', '--clear'];
  let next = 1 * MiB_SECTORS;
  if (bootMode === 'legacy-bios') {
    const n = PARTITION_NUMBER.biosBoot;
    args.push(`--new=${n}:${BIOS_BOOT.start}:${BIOS_BOOT.start + BIOS_BOOT.sectors - 1}`);
    args.push(`--typecode=${n}:EF02`, `--change-name=${n}:bios-boot`);
    next = BIOS_BOOT.start + BIOS_BOOT.sectors;
  } else if (bootMode === 'uefi') {
    const n = PARTITION_NUMBER.esp;
    args.push(
      `--new=${n}:${next}:${next + ESP_SECTORS - 1}`,
      `--typecode=${n}:EF00`,
      `--change-name=${n}:esp`,
    );
    next += ESP_SECTORS;
  }
  // The state partition sits before the root, so the root can still grow to the end of a grown volume.
  const st = PARTITION_NUMBER.state;
  args.push(
    `--new=${st}:${next}:${next + STATE_SECTORS - 1}`,
    `--typecode=${st}:${PARTITION_TYPE.state}`,
    `--change-name=${st}:stemcell-state`,
  );
  next += STATE_SECTORS;
  const r = PARTITION_NUMBER.root;
  args.push(`--new=${r}:${next}:0`, `--typecode=${r}:8300`, `--change-name=${r}:root`);
  await sgdisk(device, args);
  const layout = await readLayout(device);
  if (!layout) throw new Error(`${device}: sgdisk wrote a GPT that sfdisk cannot read back`);
  return layout;
}

/**
 * Extends the root partition to the end of a device that grew: moves the backup GPT to the new end, then
 * recreates partition 1 at the same start with the same GUID and name (the data in it is untouched).
 * Returns the new layout, or undefined when there was nothing to gain.
 */
export async function growRootPartition(device: string, layout: DiskLayout): Promise<DiskLayout | undefined> {
  await sgdisk(device, ['--move-second-header']);
  const moved = await readLayout(device);
  if (!moved) throw new Error(`${device}: GPT vanished while moving its backup header`);
  const rootEnd = layout.root.start + layout.root.sectors - 1;
  // Partitions end on 1 MiB boundaries; less than that to gain is not worth a resize.
  if (moved.lastLba - rootEnd < MiB_SECTORS) return undefined;
  const r = PARTITION_NUMBER.root;
  await sgdisk(device, [
    `--delete=${r}`,
    `--new=${r}:${layout.root.start}:0`,
    `--typecode=${r}:8300`,
    `--change-name=${r}:${layout.root.name || 'root'}`,
    `--partition-guid=${r}:${layout.root.uuid}`,
  ]);
  return readLayout(device);
}

async function sgdisk(device: string, args: string[]): Promise<void> {
  // sgdisk warns that the kernel still uses the old table; there is no kernel table here to update.
  await run('sgdisk', [...args, device]);
}

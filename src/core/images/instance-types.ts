// Which images an instance type can launch: its architecture and the boot modes its hypervisor offers, per
// EC2's documentation (Graviton: arm64, UEFI only; Nitro x86: legacy BIOS and UEFI; Xen-era x86: legacy BIOS
// only). The launch model refuses an image whose architecture or boot mode the type cannot run.
import type { Architecture, BootMode } from '../model/types.ts';

export interface InstanceTypeTraits {
  architecture: Architecture;
  bootModes: Exclude<BootMode, 'none'>[];
}

const NITRO_X86: InstanceTypeTraits = { architecture: 'x86_64', bootModes: ['legacy-bios', 'uefi'] };
const XEN_X86: InstanceTypeTraits = { architecture: 'x86_64', bootModes: ['legacy-bios'] };
const GRAVITON: InstanceTypeTraits = { architecture: 'arm64', bootModes: ['uefi'] };

const FAMILIES: Record<string, InstanceTypeTraits> = {
  t2: XEN_X86,
  m4: XEN_X86,
  c4: XEN_X86,
  r4: XEN_X86,
  ...Object.fromEntries(
    [
      't3',
      't3a',
      'm5',
      'm5a',
      'm6i',
      'm6a',
      'm7i',
      'm7a',
      'c5',
      'c5a',
      'c6i',
      'c6a',
      'c7i',
      'c7a',
      'r5',
      'r6i',
      'r7i',
    ].map((f) => [f, NITRO_X86]),
  ),
  ...Object.fromEntries(
    ['t4g', 'm6g', 'm7g', 'm8g', 'c6g', 'c7g', 'c8g', 'r6g', 'r7g', 'r8g'].map((f) => [f, GRAVITON]),
  ),
};

/** The traits of an instance type such as t3.micro; undefined for a family this table does not know. */
export function instanceTypeTraits(instanceType: string): InstanceTypeTraits | undefined {
  const family = /^([a-z][a-z0-9-]*)\.[a-z0-9]+$/.exec(instanceType)?.[1];
  return family === undefined ? undefined : FAMILIES[family];
}

/** A small, current instance type for an architecture: what local launch templates get by default. */
export function defaultInstanceType(architecture: Architecture): string {
  return architecture === 'arm64' ? 't4g.micro' : 't3.micro';
}

/**
 * Why `instanceType` cannot launch an image of this architecture and boot mode, or undefined when it can.
 * An image without a boot mode ('none') boots in the type's default mode, so only its architecture must fit.
 */
export function instanceTypeMismatch(
  instanceType: string,
  image: { architecture: Architecture; bootMode: BootMode },
): string | undefined {
  const traits = instanceTypeTraits(instanceType);
  if (!traits) return `instance type ${instanceType} is unknown to the launch model`;
  if (traits.architecture !== image.architecture)
    return `instance type ${instanceType} is ${traits.architecture}, the image is ${image.architecture}`;
  if (image.bootMode !== 'none' && !traits.bootModes.includes(image.bootMode))
    return `instance type ${instanceType} boots ${traits.bootModes.join(' or ')}, the image needs ${image.bootMode}`;
  return undefined;
}

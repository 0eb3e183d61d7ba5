import type { z } from 'zod';
import type { Architecture as ArchitectureSchema, BootMode as BootModeSchema } from '#events/stemcell.ts';

export type Architecture = z.infer<typeof ArchitectureSchema>;
export type BootMode = z.infer<typeof BootModeSchema>;

// What an account decides about launches, beside its resources: its Allowed AMIs setting per region
// (EnableAllowedImagesSettings and its criteria; GetAllowedImagesSettings reads it), and a service control policy
// of the Organization that denies it ec2:RunInstances. One JSON file per account under
// <root>/account-settings/<account>.json; the local launch model (launch-model.ts) reads it.
import { join } from 'node:path';
import type { AllowedImagesSettings } from '#ports';
import { readJson, writeJsonAtomic } from './json-state.ts';

interface AccountSettingsRecord {
  /** Per region. */
  allowedImages: Record<string, AllowedImagesSettings>;
  /** The SCP statement that denies ec2:RunInstances to the account, if any. */
  launchDeniedBy?: string;
}

export class LocalAccountSettings {
  readonly #dir: string;

  constructor(root: string) {
    this.#dir = join(root, 'account-settings');
  }

  /** GetAllowedImagesSettings; `disabled` with no criteria until set. */
  allowedImages(accountId: string, region: string): AllowedImagesSettings {
    return this.#read(accountId).allowedImages[region] ?? { state: 'disabled', criteria: [] };
  }

  /** EnableAllowedImagesSettings / ReplaceImageCriteriaInAllowedImagesSettings / DisableAllowedImagesSettings. */
  setAllowedImages(accountId: string, region: string, settings: AllowedImagesSettings): void {
    const record = this.#read(accountId);
    record.allowedImages[region] = structuredClone(settings);
    this.#write(accountId, record);
  }

  /** Models an SCP denying ec2:RunInstances to the account (`statement` names it); undefined lifts it. */
  denyLaunches(accountId: string, statement: string | undefined): void {
    const record = this.#read(accountId);
    if (statement) record.launchDeniedBy = statement;
    else delete record.launchDeniedBy;
    this.#write(accountId, record);
  }

  /** The SCP statement that denies launches to the account, if any. */
  launchDenial(accountId: string): string | undefined {
    return this.#read(accountId).launchDeniedBy;
  }

  #path(accountId: string): string {
    if (!/^\d{12}$/.test(accountId)) throw new Error(`account id ${accountId} is not 12 digits`);
    return join(this.#dir, `${accountId}.json`);
  }

  #read(accountId: string): AccountSettingsRecord {
    return readJson<AccountSettingsRecord>(this.#path(accountId), { allowedImages: {} });
  }

  #write(accountId: string, record: AccountSettingsRecord): void {
    writeJsonAtomic(this.#path(accountId), record);
  }
}

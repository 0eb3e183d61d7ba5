// Tags as the core sees them (a record) and as EC2 takes them (Key/Value lists, TagSpecifications).
import type { Tag, TagSpecification } from '@aws-sdk/client-ec2';
import type { Tags } from '#ports';

export function toTagList(tags: Tags): { Key: string; Value: string }[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export function fromTagList(
  list: { Key?: string | undefined; Value?: string | undefined }[] | undefined,
): Tags {
  const tags: Tags = {};
  for (const t of list ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
  return tags;
}

/** Tags applied by the create call itself: never a second CreateTags call. */
export function tagSpecifications(
  resourceType: NonNullable<TagSpecification['ResourceType']>,
  tags: Tags,
): TagSpecification[] {
  return [{ ResourceType: resourceType, Tags: toTagList(tags) as Tag[] }];
}

/** EC2 filter on a tag value. */
export function tagFilter(key: string, value: string): { Name: string; Values: string[] } {
  return { Name: `tag:${key}`, Values: [value] };
}

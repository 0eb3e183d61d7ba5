// Stateful fake of a DynamoDB table behind the DocumentClient, with a small evaluator for the expression
// subset DynamoReleaseStore uses: Put, SET / ADD updates on nested map paths, conditions attribute_exists,
// attribute_not_exists, IN and =, AND; begins_with key conditions; equality filters.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, page } from './common.ts';

type Item = Record<string, unknown>;
type Names = Record<string, string> | undefined;
type Values = Record<string, unknown> | undefined;

function path(expr: string, names: Names): string[] {
  return expr
    .trim()
    .split('.')
    .map((p) =>
      p.startsWith('#')
        ? (names?.[p] ??
          (() => {
            throw awsError('ValidationException', `undefined name ${p}`);
          })())
        : p,
    );
}

function getPath(item: Item | undefined, p: string[]): unknown {
  let cur: unknown = item;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Item)[k];
  }
  return cur;
}

function setPath(item: Item, p: string[], value: unknown): void {
  let cur = item;
  for (const k of p.slice(0, -1)) {
    const next = cur[k];
    // Like DynamoDB: SET a.b.c needs a.b to exist already.
    if (next === null || typeof next !== 'object')
      throw awsError(
        'ValidationException',
        'The document path provided in the update expression is invalid for update',
      );
    cur = next as Item;
  }
  cur[p[p.length - 1] as string] = structuredClone(value);
}

function value(token: string, values: Values): unknown {
  const t = token.trim();
  if (!(t in (values ?? {}))) throw awsError('ValidationException', `undefined value ${t}`);
  return values?.[t];
}

function evaluate(expr: string | undefined, item: Item | undefined, names: Names, values: Values): boolean {
  if (!expr) return true;
  return expr.split(/\s+AND\s+/).every((clause) => {
    let m = /^attribute_exists\((.+)\)$/.exec(clause.trim());
    if (m) return getPath(item, path(m[1] as string, names)) !== undefined;
    m = /^attribute_not_exists\((.+)\)$/.exec(clause.trim());
    if (m) return getPath(item, path(m[1] as string, names)) === undefined;
    m = /^begins_with\((.+),\s*(.+)\)$/.exec(clause.trim());
    if (m)
      return String(getPath(item, path(m[1] as string, names)) ?? '').startsWith(
        String(value(m[2] as string, values)),
      );
    m = /^(.+)\s+IN\s+\((.+)\)$/.exec(clause.trim());
    if (m) {
      const actual = getPath(item, path(m[1] as string, names));
      return (m[2] as string).split(',').some((v) => value(v, values) === actual);
    }
    m = /^(.+)\s+=\s+(.+)$/.exec(clause.trim());
    if (m) return getPath(item, path(m[1] as string, names)) === value(m[2] as string, values);
    throw awsError('ValidationException', `fake does not understand ${clause}`);
  });
}

function applyUpdate(item: Item, expr: string, names: Names, values: Values): void {
  const set = /^SET\s+(.+)$/.exec(expr.trim());
  if (set) {
    for (const assignment of (set[1] as string).split(/,\s*(?=[#a-zA-Z])/)) {
      const [lhs, rhs] = assignment.split('=');
      setPath(item, path(lhs as string, names), value(rhs as string, values));
    }
    return;
  }
  const add = /^ADD\s+(\S+)\s+(\S+)$/.exec(expr.trim());
  if (add) {
    const p = path(add[1] as string, names);
    setPath(item, p, Number(getPath(item, p) ?? 0) + Number(value(add[2] as string, values)));
    return;
  }
  throw awsError('ValidationException', `fake does not understand ${expr}`);
}

export class FakeDynamoTable {
  readonly items = new Map<string, Item>();
  readonly pageSize = 2;

  #key(k: { pk: unknown; sk: unknown }): string {
    return `${String(k.pk)}|${String(k.sk)}`;
  }

  client(): DynamoDBDocumentClient {
    const base = new DynamoDBClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const client = DynamoDBDocumentClient.from(base);
    const mock = mockClient(client);
    mock.on(GetCommand).callsFake((input) => {
      const item = this.items.get(this.#key(input.Key));
      return { Item: item ? structuredClone(item) : undefined };
    });
    mock.on(PutCommand).callsFake((input) => {
      const key = this.#key(input.Item);
      if (
        !evaluate(
          input.ConditionExpression,
          this.items.get(key),
          input.ExpressionAttributeNames,
          input.ExpressionAttributeValues,
        )
      ) {
        throw awsError('ConditionalCheckFailedException');
      }
      this.items.set(key, structuredClone(input.Item));
      return {};
    });
    mock.on(UpdateCommand).callsFake((input) => {
      const key = this.#key(input.Key);
      const existing = this.items.get(key);
      if (
        !evaluate(
          input.ConditionExpression,
          existing,
          input.ExpressionAttributeNames,
          input.ExpressionAttributeValues,
        )
      ) {
        // Like DynamoDB: the item as it was, when asked for (raw attribute values there; presence is enough here).
        throw Object.assign(awsError('ConditionalCheckFailedException'), {
          Item:
            input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && existing
              ? structuredClone(existing)
              : undefined,
        });
      }
      const item = structuredClone(existing ?? { ...input.Key });
      applyUpdate(
        item,
        input.UpdateExpression,
        input.ExpressionAttributeNames,
        input.ExpressionAttributeValues,
      );
      this.items.set(key, item);
      return { Attributes: input.ReturnValues === 'UPDATED_NEW' ? structuredClone(item) : undefined };
    });
    mock.on(TransactWriteCommand).callsFake((input) => {
      // All or nothing: every condition is checked first; CancellationReasons say which failed, as DynamoDB does.
      type Write = {
        Put?: { Item: Item; ConditionExpression?: string };
        Update?: {
          Key: Item;
          UpdateExpression: string;
          ConditionExpression?: string;
          ExpressionAttributeNames?: Names;
          ExpressionAttributeValues?: Values;
        };
      };
      const writes = (input.TransactItems ?? []) as Write[];
      const reasons = writes.map((w) => {
        const key = w.Put ? w.Put.Item : (w.Update?.Key as Item);
        const ok = evaluate(
          w.Put?.ConditionExpression ?? w.Update?.ConditionExpression,
          this.items.get(this.#key(key as { pk: unknown; sk: unknown })),
          w.Update?.ExpressionAttributeNames,
          w.Update?.ExpressionAttributeValues,
        );
        return { Code: ok ? 'None' : 'ConditionalCheckFailed' };
      });
      if (reasons.some((r) => r.Code !== 'None')) {
        throw Object.assign(
          awsError(
            'TransactionCanceledException',
            `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
          ),
          { CancellationReasons: reasons },
        );
      }
      for (const w of writes) {
        if (w.Put) {
          this.items.set(this.#key(w.Put.Item as { pk: unknown; sk: unknown }), structuredClone(w.Put.Item));
        } else if (w.Update) {
          const key = this.#key(w.Update.Key as { pk: unknown; sk: unknown });
          const item = structuredClone(this.items.get(key) ?? { ...w.Update.Key });
          applyUpdate(
            item,
            w.Update.UpdateExpression,
            w.Update.ExpressionAttributeNames,
            w.Update.ExpressionAttributeValues,
          );
          this.items.set(key, item);
        }
      }
      return {};
    });
    mock.on(QueryCommand).callsFake((input) => {
      const matching = [...this.items.values()]
        .filter((i) =>
          evaluate(
            input.KeyConditionExpression,
            i,
            input.ExpressionAttributeNames,
            input.ExpressionAttributeValues,
          ),
        )
        .sort((a, b) => String(a.sk).localeCompare(String(b.sk)));
      const p = page(
        matching,
        input.ExclusiveStartKey ? String(input.ExclusiveStartKey.offset) : undefined,
        this.pageSize,
      );
      return { Items: structuredClone(p.items), LastEvaluatedKey: p.next ? { offset: p.next } : undefined };
    });
    mock.on(ScanCommand).callsFake((input) => {
      const all = [...this.items.values()];
      const p = page(
        all,
        input.ExclusiveStartKey ? String(input.ExclusiveStartKey.offset) : undefined,
        this.pageSize,
      );
      const items = p.items.filter((i) =>
        evaluate(input.FilterExpression, i, input.ExpressionAttributeNames, input.ExpressionAttributeValues),
      );
      return { Items: structuredClone(items), LastEvaluatedKey: p.next ? { offset: p.next } : undefined };
    });
    return client;
  }
}

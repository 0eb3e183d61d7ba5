"""KMS keys created by CloudFormation:

- A multi-Region key's id is mrk- and 32 hex digits (moto puts a dashed UUID after mrk-, 40 characters, which
  its own ciphertext format cuts to 36, so nothing encrypted under such a key decrypts):
  https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html
- AWS::KMS::Key honours MultiRegion (moto's CloudFormation ignores it, so the key id lacks its mrk- prefix):
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-kms-key.html
- AWS::KMS::ReplicaKey (not modelled by moto's CloudFormation) replicates the primary into the stack's Region,
  with the same key id, and `Ref` returns that id:
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-kms-replicakey.html
- Another account's key is used by its key ARN (moto looks every key up in the caller's account):
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
- Another account decrypts with a key once a grant lets one of its principals (moto refuses it even then):
  https://docs.aws.amazon.com/kms/latest/developerguide/grants.html
- ListGrants with GranteePrincipal returns only that principal's grants (moto ignores the filter):
  https://docs.aws.amazon.com/kms/latest/APIReference/API_ListGrants.html
"""

from __future__ import annotations

import json
from typing import Any


def apply() -> None:
    import uuid

    from moto.kms import models as kms_models

    kms_models.generate_key_id = lambda multi_region=False: (
        f"mrk-{uuid.uuid4().hex}" if multi_region else str(uuid.uuid4())
    )
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.kms.models import Key, kms_backends

    def create_key(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Key:
        props = cloudformation_json["Properties"]
        policy = props["KeyPolicy"]
        key = kms_backends[account_id][region_name].create_key(
            policy=policy if isinstance(policy, str) else json.dumps(policy),
            key_usage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=props.get("Description"),
            tags=props.get("Tags", []),
            multi_region=str(props.get("MultiRegion", "false")).lower() == "true",
        )
        key.key_rotation_status = props.get("EnableKeyRotation", False)
        key.enabled = props.get("Enabled", True)
        return key

    Key.create_from_cloudformation_json = classmethod(create_key)  # type: ignore[assignment]

    class ReplicaKey(CloudFormationModel):
        def __init__(self, key: Key) -> None:
            self.key = key

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::KMS::ReplicaKey"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @property
        def physical_resource_id(self) -> str:
            return self.key.id

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr in ("Arn", "KeyId")

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.key.arn if attribute_name == "Arn" else self.key.id

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> "ReplicaKey":
            props = cloudformation_json["Properties"]
            primary = props["PrimaryKeyArn"]
            primary_region = primary.split(":")[3]
            key_id = primary.split(":key/")[1]
            replica = kms_backends[account_id][primary_region].replicate_key(key_id, region_name)
            policy = props.get("KeyPolicy")
            if policy is not None:
                replica.policy = policy if isinstance(policy, str) else json.dumps(policy)
            replica.description = props.get("Description", replica.description)
            return cls(replica)

    parsing.get_model_map()["AWS::KMS::ReplicaKey"] = ReplicaKey

    # A key of another account is used by its ARN (moto looks every key id up in the caller's account); whether
    # the key policy lets the caller in is not evaluated here (the IAM simulator test covers policies).
    from moto.kms.responses import KmsResponse

    def kms_backend(self: KmsResponse) -> Any:
        key_id = str(self._get_param("KeyId") or "")
        if key_id.startswith("arn:") and ":key/" in key_id:
            _, _, _, region, account = key_id.split(":")[:5]
            return kms_backends[account][region]
        return kms_backends[self.current_account][self.region]

    KmsResponse.kms_backend = property(kms_backend)  # type: ignore[assignment]

    # Decrypt by another account: allowed when a grant on the key names a principal of that account with the
    # Decrypt operation (moto looks the key up in the caller's account only, so every grant is in vain).
    from moto.kms.exceptions import AccessDeniedException
    from moto.kms.models import KmsBackend
    from moto.kms.utils import decrypt as decrypt_blob

    original_decrypt = KmsBackend.decrypt

    def decrypt(self: KmsBackend, ciphertext_blob: bytes, encryption_context: Any, key_id: Any = None) -> Any:
        try:
            return original_decrypt(self, ciphertext_blob, encryption_context, key_id)
        except Exception as own:
            for account, regions in list(kms_backends.items()):
                if account == self.account_id:
                    continue
                owner = regions[self.region_name]
                try:
                    plaintext, actual = decrypt_blob(
                        master_keys=owner.keys, ciphertext_blob=ciphertext_blob, encryption_context=encryption_context
                    )
                except Exception:
                    continue
                key = owner.keys[actual]
                granted = any(
                    g.grantee_principal.split(":")[4:5] == [self.account_id] and "Decrypt" in g.operations
                    for g in key.grants.values()
                )
                if not granted:
                    raise AccessDeniedException(
                        f"account {self.account_id} is not allowed to use key {key.arn} (no grant)"
                    ) from own
                return plaintext, key.arn
            raise

    KmsBackend.decrypt = decrypt  # type: ignore[method-assign]

    original_list_grants = KmsResponse.list_grants

    def list_grants(self: KmsResponse) -> str:
        answer = json.loads(original_list_grants(self))
        grantee = self._get_param("GranteePrincipal")
        if grantee:
            answer["Grants"] = [g for g in answer["Grants"] if g.get("GranteePrincipal") == grantee]
            answer["GrantCount"] = len(answer["Grants"])
        return json.dumps(answer)

    KmsResponse.list_grants = list_grants  # type: ignore[method-assign]

;; Has no tenantry_abi_version export: the host must refuse to load it.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)

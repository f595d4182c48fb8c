;; Has no tenantry_alloc export: the host must refuse to load it.
(module
  (memory (export "memory") 1)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)

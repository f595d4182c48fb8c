;; Declares an initial memory of 65536 pages (4 GiB): instantiation must fail under the host's memory limit.
(module
  (memory (export "memory") 65536)
  (func (export "tenantry_abi_version") (result i32) (i32.const 1))
  (func (export "tenantry_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))
)

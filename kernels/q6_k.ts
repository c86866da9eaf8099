// PLACEHOLDER: replaced by the real kernel (see kernels/index.ts for the contract).
export function quantizeRowsQ6_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeQ6_K(src: usize, dst: usize, k: i32): void { unreachable(); }
